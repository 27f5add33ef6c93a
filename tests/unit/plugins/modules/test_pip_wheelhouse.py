"""pip_wheelhouse with the real pip of the test's own Python, offline: the requirement is a
wheel the test makes in a find_links folder and the index is an empty local folder, so
`pip wheel` resolves, copies and names the set as it does against PyPI."""

from __future__ import annotations

import os
import sys
import zipfile

import pytest

from ansible_collections.ai_infra.langgraph_stack.plugins.modules import pip_wheelhouse
from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import AnsibleFailJson, run_module


def make_wheel(folder, name="tinypkg", version="1.0"):
    path = folder / ("%s-%s-py3-none-any.whl" % (name, version))
    info = "%s-%s.dist-info" % (name, version)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("%s/__init__.py" % name, "")
        wheel.writestr(info + "/METADATA", "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version))
        wheel.writestr(info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(info + "/RECORD", "")
    return path


@pytest.fixture(autouse=True)
def offline_pip(monkeypatch):
    # The machine's pip settings (its own find-links and indexes) stay out of the test.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def setup(tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    make_wheel(extra)
    index = tmp_path / "empty-index"
    index.mkdir()
    return {
        "requirements": ["tinypkg==1.0"],
        "wheelhouse": str(tmp_path / "wheels"),
        # The test's own environment has pip: it stands for the role's venv.
        "virtualenv": sys.prefix,
        "find_links": [str(extra)],
        "index_url": index.as_uri(),
        "timeout": 300,
    }


def test_builds_once_then_installs_from_the_folder(setup):
    first = run_module(pip_wheelhouse.main, setup)
    assert first["changed"] and first["built"]
    assert first["wheels"] == 1
    # The wheels, and the set they were built from.
    assert sorted(os.listdir(first["path"])) == ["requirements.txt", "tinypkg-1.0-py3-none-any.whl"]
    assert first["pip_args"] == ["--no-index", "--find-links", first["path"]]
    # Named by distro, Python and platform, then by the set.
    family = os.path.basename(os.path.dirname(first["path"]))
    assert sys.implementation.cache_tag in family
    # No staging folder is left behind, and others can read it.
    assert [n for n in os.listdir(os.path.dirname(first["path"])) if n.startswith(".building-")] == []
    assert os.stat(first["path"]).st_mode & 0o777 == 0o755

    second = run_module(pip_wheelhouse.main, setup)
    assert not second["changed"] and not second["built"]
    assert second["path"] == first["path"]


def test_same_set_in_another_order_and_with_comments_is_the_same_folder(setup):
    first = run_module(pip_wheelhouse.main, setup)
    setup["requirements"] = ["# the tiny package", "", "tinypkg==1.0  # pinned"]
    assert run_module(pip_wheelhouse.main, setup)["path"] == first["path"]


def test_a_new_wheel_offered_by_find_links_is_a_new_folder(setup, tmp_path):
    first = run_module(pip_wheelhouse.main, setup)
    make_wheel(tmp_path / "extra", version="1.1")
    second = run_module(pip_wheelhouse.main, setup)
    assert second["built"] and second["path"] != first["path"]


def test_check_mode_builds_nothing(setup):
    result = run_module(pip_wheelhouse.main, setup, check_mode=True)
    assert result["changed"] and not result["built"]
    assert not os.path.exists(result["path"])
    assert result["pip_args"] == []


def test_check_mode_gives_pip_no_arguments(setup):
    """ansible.builtin.pip calls any install with extra_args a change in check mode: a drift
    report (reprovision.yml) listed every venv as drifted until the dry run got none."""
    built = run_module(pip_wheelhouse.main, setup)
    result = run_module(pip_wheelhouse.main, setup, check_mode=True)
    assert not result["changed"]
    assert result["path"] == built["path"]
    assert result["pip_args"] == []


def test_check_mode_before_the_venv_exists(setup, tmp_path):
    setup["virtualenv"] = str(tmp_path / "no-venv-yet")
    result = run_module(pip_wheelhouse.main, setup, check_mode=True)
    assert result == {"changed": True, "built": False, "path": None, "pip_args": []}
    assert not os.path.exists(setup["virtualenv"])


def test_pip_failure_is_one_sentence_and_leaves_nothing(setup):
    setup["requirements"] = ["no-such-package-anywhere==9.9"]
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(pip_wheelhouse.main, setup)
    msg = failure.value.result["msg"]
    assert msg.startswith("pip wheel failed for no-such-package-anywhere==9.9 (exit 1): ")
    assert "\n" not in msg
    assert not os.path.exists(setup["wheelhouse"]) or all(
        not name.startswith(".building-") for family in os.listdir(setup["wheelhouse"]) for name in os.listdir(os.path.join(setup["wheelhouse"], family))
    )


def test_unpinned_requirement_warns(setup, mocker):
    warn = mocker.patch.object(pip_wheelhouse.AnsibleModule, "warn")
    setup["requirements"] = ["tinypkg"]
    run_module(pip_wheelhouse.main, setup)
    warn.assert_called_once()
    assert "tinypkg is not pinned" in warn.call_args[0][0]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"requirements": ["-r other.txt"]}, "requirement '-r other.txt' is a pip option; give requirement specifiers only"),
        ({"requirements": ["# nothing", " "]}, "requirements holds no requirement: nothing to put in the wheelhouse."),
        ({"wheelhouse": "relative/wheels"}, "wheelhouse must be an absolute path, not "),
        ({"find_links": ["/nonexistent/wheels"]}, "find_links entry /nonexistent/wheels is not a directory."),
        ({"timeout": 0}, "timeout must be a positive number of seconds, not 0"),
    ],
)
def test_bad_input_fails_with_one_sentence(setup, change, message):
    setup.update(change)
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(pip_wheelhouse.main, setup)
    assert failure.value.result["msg"].startswith(message)


def test_missing_python_to_make_the_venv(setup, tmp_path):
    setup["virtualenv"] = str(tmp_path / "venv")
    setup["virtualenv_python"] = str(tmp_path / "no-python3")
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(pip_wheelhouse.main, setup)
    assert failure.value.result["msg"] == "%s is not an executable file, so the venv %s cannot be made." % (
        setup["virtualenv_python"],
        setup["virtualenv"],
    )


def test_makes_the_venv_when_missing(setup, tmp_path):
    setup["virtualenv"] = str(tmp_path / "venv")
    setup["virtualenv_python"] = sys.executable
    result = run_module(pip_wheelhouse.main, setup)
    assert result["built"]
    assert os.path.exists(os.path.join(setup["virtualenv"], "bin", "python"))


def test_python_that_does_not_answer(setup, mocker):
    mocker.patch.object(pip_wheelhouse.AnsibleModule, "run_command", return_value=(1, "", "Segmentation fault\n"))
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(pip_wheelhouse.main, setup)
    assert failure.value.result["msg"] == "%s/bin/python did not say its version and platform: Segmentation fault." % sys.prefix


def test_pip_wheel_that_hangs(setup, mocker):
    answers = iter([(0, "cpython-311-linux-x86_64\n", ""), (124, "", "")])
    mocker.patch.object(pip_wheelhouse.AnsibleModule, "run_command", side_effect=lambda *a, **k: next(answers))
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(pip_wheelhouse.main, setup)
    assert failure.value.result["msg"] == "pip wheel did not finish within 300 seconds."


def test_os_release_id(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    assert pip_wheelhouse.os_release_id(str(release)) == "debian-12"
    assert pip_wheelhouse.os_release_id(str(tmp_path / "missing")) == "unknown"


def test_sdists_are_built_the_pep_517_way(setup, mocker):
    """Debian 12's pip builds an sdist without pyproject.toml with `setup.py bdist_wheel`
    unless told otherwise, which fails in a venv without the wheel package (seen with
    forbiddenfruit, a dependency of langgraph-api)."""
    calls = []

    def answer(argv, **kwargs):
        calls.append(argv)
        if "wheel" in argv:
            return 1, "", "ERROR: stop here\n"
        return 0, "cpython-311-linux-x86_64\n", ""

    mocker.patch.object(pip_wheelhouse.AnsibleModule, "run_command", side_effect=answer)
    with pytest.raises(AnsibleFailJson):
        run_module(pip_wheelhouse.main, setup)
    assert "--use-pep517" in calls[-1]
    assert calls[-1][calls[-1].index("-m") + 1 : calls[-1].index("-m") + 3] == ["pip", "wheel"]


def test_a_folder_renamed_into_place_by_another_builder_meanwhile_is_kept(setup, mocker):
    """A builder without the lock (the vLLM test image's script) may finish first."""
    real_rename = os.rename

    def other_builder_first(source, destination):
        os.makedirs(destination)
        with open(os.path.join(destination, "theirs.whl"), "w"):
            pass
        real_rename(source, destination)  # raises: the folder is there and not empty

    mocker.patch.object(pip_wheelhouse.os, "rename", side_effect=other_builder_first)
    result = run_module(pip_wheelhouse.main, setup)
    assert not result["changed"] and not result["built"]
    assert os.listdir(result["path"]) == ["theirs.whl"]
    assert [n for n in os.listdir(os.path.dirname(result["path"])) if n.startswith(".building-")] == []
