# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How the phoenix_* modules reach Phoenix (module_utils.phoenix_api.phoenix_argument_spec).
    DOCUMENTATION = r"""
options:
  url:
    description: Base URL of Phoenix, such as C(http://127.0.0.1:6006).
    type: str
    required: true
  timeout:
    description: Seconds for each request.
    type: int
    default: 30
  validate_certs:
    description: Verify TLS certificates for C(https) URLs.
    type: bool
    default: true
"""
