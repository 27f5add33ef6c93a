"""Verifies the postgresql role on the running server, with real LangGraph checkpoints."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest
import testinfra
from conftest import apt_update_with, connect_from, listening_on, run_playbook, scenario_name, signature_refused_with_other_key

testinfra_hosts = ["ansible://molecule_hosts"]

LANGGRAPH = ("langgraph", "molecule-langgraph-secret")
PHOENIX = ("phoenix", "molecule-phoenix-secret")
TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
WRITER = pathlib.Path(__file__).parent.parent / "files" / "write_checkpoints.py"
TEST_VENV = "/opt/molecule-langgraph"


def psql(host, sql, user=LANGGRAPH, db="langgraph"):
    return host.run(
        "PGPASSWORD=%s psql -h 127.0.0.1 -U %s -d %s -XAtc %s", user[1], user[0], db, sql
    )


def count(host, sql):
    return int(psql(host, sql).stdout.strip())


def test_service_running_and_enabled(host):
    assert host.service("postgresql").is_enabled
    assert host.run("pg_isready -h 127.0.0.1").rc == 0


def test_listens_on_loopback_and_private_address_only(host, prober):
    address = host.interface("eth0").addresses[0]
    listening = listening_on(host, 5432)
    required = {"tcp://127.0.0.1:5432", f"tcp://{address}:5432"}
    assert required <= listening <= required | {"tcp://::1:5432"}
    assert connect_from(prober, address, 5432) == "open"  # firewall rule for the network


TLS_DIR = "/etc/ai-infra/postgresql-tls"
# Runs on the prober: PostgreSQL's SSLRequest, then a TLS handshake that checks the
# server's certificate against one CA file ("-": the system's CAs) and one name, as
# libpq's sslmode=verify-full does. Prints "verified" or why not.
TLS_HANDSHAKE = """
import socket, ssl, struct, sys
address, cafile, name = sys.argv[1], sys.argv[2], sys.argv[3]
sock = socket.create_connection((address, 5432), timeout=5)
sock.sendall(struct.pack("!ii", 8, 80877103))
assert sock.recv(1) == b"S"
context = ssl.create_default_context(cafile=None if cafile == "-" else cafile)
try:
    context.wrap_socket(sock, server_hostname=name).close()
    print("verified")
except ssl.SSLCertVerificationError as err:
    print(err.verify_message)
"""


def handshake(prober, address: str, cafile: str, name: str) -> str:
    return prober.check_output("python3 -c %s %s %s %s", TLS_HANDSHAKE, address, cafile, name)


def test_certificate_from_the_hosts_own_ca_checked_like_verify_full(host, prober):
    """From another machine: the server's certificate verifies against this host's CA and
    its address only; another host's CA, the system's CAs or another name are refused."""
    address = host.interface("eth0").addresses[0]
    name = host.backend.get_hostname()
    own = f"/tmp/{name}-postgresql-ca.crt"
    prober.run_expect([0], f"cat > {own} << 'EOF'\n{host.file(TLS_DIR + '/ca.crt').content_string}EOF")
    assert handshake(prober, address, own, address) == "verified"
    assert handshake(prober, address, own, name) == "verified"
    assert "mismatch" in handshake(prober, address, own, "db.example.invalid")
    assert "unable to get local issuer certificate" in handshake(prober, address, "-", address)
    # The other test host's CA (each host has its own) does not vouch for this one.
    for distro in ("debian12", "debian13"):
        other = testinfra.get_host(f"docker://{scenario_name()}-{distro}")
        if other.backend.get_hostname() != name:
            foreign = f"/tmp/{distro}-foreign-postgresql-ca.crt"
            prober.run_expect([0], f"cat > {foreign} << 'EOF'\n{other.file(TLS_DIR + '/ca.crt').content_string}EOF")
            assert handshake(prober, address, foreign, address) != "verified"
    # libpq itself, with the password, over the private address.
    login = host.run(
        "PGPASSWORD=%s psql %s -XAtc 'select ssl from pg_stat_ssl where pid = pg_backend_pid()'", LANGGRAPH[1],
        f"host={address} user=langgraph dbname=langgraph sslmode=verify-full sslrootcert={TLS_DIR}/ca.crt",
    )
    assert login.stdout.strip() == "t", login.stderr


def test_ca_key_stays_root_only(host):
    ca_key, server_key = host.file(TLS_DIR + "/ca.key"), host.file(TLS_DIR + "/server.key")
    assert (ca_key.user, ca_key.group, ca_key.mode) == ("root", "root", 0o600)
    assert (server_key.user, server_key.group, server_key.mode) == ("root", "postgres", 0o640)
    assert psql(host, "show ssl_key_file").stdout.strip() == TLS_DIR + "/server.key"


PGDG_SOURCES = "/etc/apt/sources.list.d/ai-infra-pgdg.sources"
PGDG_KEYRING = "/etc/apt/keyrings/ai-infra-pgdg.asc"


def test_pgdg_repository_only_where_asked(host):
    pgdg = host.ansible.get_variables().get("postgresql_repository") == "pgdg"
    assert host.file(PGDG_SOURCES).exists == pgdg
    assert host.file(PGDG_KEYRING).exists == pgdg
    if not pgdg:
        pytest.skip("this host uses the distro's PostgreSQL")
    sources = host.file(PGDG_SOURCES)
    assert sources.mode == 0o644 and sources.user == "root"
    assert f"Signed-By: {PGDG_KEYRING}" in sources.content_string
    assert "Suites: bookworm-pgdg" in sources.content_string
    # The repository's signature is checked against that keyring, and only against it.
    good = apt_update_with(host, PGDG_SOURCES)
    assert good.rc == 0 and "W:" not in good.stdout + good.stderr, good.stderr
    assert signature_refused_with_other_key(host, PGDG_SOURCES)
    # The pinned major is offered from the PGDG suite and installed.
    policy = host.run("apt-cache policy postgresql-15").stdout
    assert "file:/srv/pgdg-mirror bookworm-pgdg/main" in policy, policy
    assert host.package("postgresql-15").is_installed


def test_password_login_required(host):
    assert psql(host, "select 1").stdout.strip() == "1"
    wrong = psql(host, "select 1", user=("langgraph", "wrong-password"))
    assert wrong.rc != 0 and "password authentication failed" in wrong.stderr
    nopass = host.run("psql -h 127.0.0.1 -U langgraph -d langgraph -w -XAtc 'select 1'")
    assert nopass.rc != 0


def test_scram_only_and_no_trust(host):
    hba = host.file("/etc/postgresql/%s/main/pg_hba.conf" % host.check_output("ls /etc/postgresql")).content_string
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert all(rule[-1] in ("scram-sha-256", "peer") for rule in rules), rules
    assert not any("trust" in rule for rule in rules)
    assert psql(host, "show password_encryption").stdout.strip() == "scram-sha-256"
    shadow = host.run("runuser -u postgres -- psql -XAtc \"select rolpassword from pg_authid where rolname='langgraph'\"")
    assert shadow.stdout.startswith("SCRAM-SHA-256$")


def test_each_role_reaches_only_its_database(host):
    assert psql(host, "select 1", user=PHOENIX, db="phoenix").stdout.strip() == "1"
    assert psql(host, "select 1", user=LANGGRAPH, db="phoenix").rc != 0
    assert psql(host, "select 1", user=PHOENIX, db="langgraph").rc != 0
    attrs = psql(host, "select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname='langgraph'")
    assert attrs.stdout.strip() == "f|f|f"


def test_checkpoint_schema_made_by_the_official_setup(host):
    owned = psql(host, "select tablename from pg_tables where tableowner='langgraph' order by 1").stdout.split()
    for table in TABLES + ("checkpoint_migrations", "store", "store_migrations"):
        assert table in owned
    assert count(host, "select count(*) from checkpoint_migrations") > 0


def test_timer_enabled_with_next_elapse(host):
    timer = host.service("ai-infra-checkpoint-prune.timer")
    assert timer.is_enabled and timer.is_running
    nxt = host.check_output("systemctl show ai-infra-checkpoint-prune.timer -p NextElapseUSecRealtime --value")
    assert nxt.strip() not in ("", "n/a", "0")


def langgraph_venv(host):
    """LangGraph and its PostgreSQL checkpointer in a venv on the host, for the tests' own writers."""
    if not host.file(f"{TEST_VENV}/bin/python").exists:
        host.check_output(f"python3 -m venv {TEST_VENV}")
        host.check_output(
            f"{TEST_VENV}/bin/pip install -q langgraph==1.2.22 langgraph-checkpoint-postgres==3.2.0 'psycopg[binary]==3.3.9'"
        )


@pytest.fixture(scope="module")
def threads(host):
    """Real checkpoints written by LangGraph: recent threads, and threads aged 40 days."""
    langgraph_venv(host)
    host.check_output("mkdir -p /opt/molecule-files")
    with open(WRITER, encoding="utf-8") as handle:
        source = handle.read()
    host.check_output("cat > /opt/molecule-files/write_checkpoints.py <<'PYEOF'\n%s\nPYEOF" % source)
    dsn = "postgresql://langgraph:molecule-langgraph-secret@127.0.0.1:5432/langgraph"
    out = host.check_output(
        f"{TEST_VENV}/bin/python /opt/molecule-files/write_checkpoints.py --dsn {dsn} --recent 4 --old 3 --age-days 40"
    )
    return json.loads(out.strip().splitlines()[-1])


def rows_per_table(host, thread_ids):
    ids = ",".join(f"'{t}'" for t in thread_ids)
    return {table: count(host, f"select count(*) from {table} where thread_id in ({ids})") for table in TABLES}


def test_module_check_mode_reports_and_deletes_nothing(host, threads):
    before = rows_per_table(host, threads["old"])
    assert all(before.values()), before  # the aged threads have rows in all three tables
    result = host.ansible(
        "ai_infra.langgraph_stack.checkpoint_prune",
        "login_host=127.0.0.1 login_user=langgraph login_password=molecule-langgraph-secret "
        "login_db=langgraph retention_days=30",
        check=True,
    )
    assert result["threads_pruned"] >= 3
    assert result["changed"] is True
    assert rows_per_table(host, threads["old"]) == before


def test_prune_service_removes_old_threads_everywhere_and_keeps_recent(host, threads):
    recent_before = rows_per_table(host, threads["recent"])
    assert all(recent_before.values())
    host.check_output("systemctl start ai-infra-checkpoint-prune.service")
    assert host.run("systemctl is-failed ai-infra-checkpoint-prune.service").stdout.strip() != "failed"
    assert rows_per_table(host, threads["old"]) == {t: 0 for t in TABLES}
    assert rows_per_table(host, threads["recent"]) == recent_before
    for table in ("checkpoint_blobs", "checkpoint_writes"):
        orphans = count(
            host, f"select count(*) from {table} x where not exists "
                  f"(select 1 from checkpoints c where c.thread_id = x.thread_id)")
        assert orphans == 0, table
    journal = host.check_output("journalctl -u ai-infra-checkpoint-prune.service --no-pager -o cat")
    assert "removed" in journal and "thread(s)" in journal


def test_module_after_prune_changes_nothing(host, threads):
    result = host.ansible(
        "ai_infra.langgraph_stack.checkpoint_prune",
        "login_host=127.0.0.1 login_user=langgraph login_password=molecule-langgraph-secret "
        "login_db=langgraph retention_days=30",
        check=False,
    )
    assert result["changed"] is False and result["threads_pruned"] == 0


def test_backup_dumps_every_database_and_rotates(host):
    backups = host.file("/var/backups/postgresql")
    assert backups.is_directory and backups.user == "postgres" and backups.mode == 0o700
    assert host.service("ai-infra-pg-backup.timer").is_enabled
    # A dump older than the retention must go; a recent foreign file must stay.
    host.check_output("runuser -u postgres -- touch -d '10 days ago' /var/backups/postgresql/langgraph-old.dump")
    host.check_output("runuser -u postgres -- touch /var/backups/postgresql/notes.txt")
    host.check_output("systemctl start ai-infra-pg-backup.service")
    names = host.check_output("ls /var/backups/postgresql").split()
    assert "langgraph-old.dump" not in names and "notes.txt" in names
    for db in ("langgraph", "phoenix"):
        dumps = [n for n in names if n.startswith(db + "-") and n.endswith(".dump")]
        assert dumps, names
        listing = host.check_output("pg_restore --list /var/backups/postgresql/%s" % dumps[-1])
        assert "TOC" in listing
    assert not [n for n in names if n.endswith(".partial")]
    langgraph_dump = sorted(n for n in names if n.startswith("langgraph-"))[-1]
    toc = host.check_output("pg_restore --list /var/backups/postgresql/%s" % langgraph_dump)
    assert "TABLE public checkpoints" in toc


PRUNE_FILES = ("bench/prune_checkpoints.py", "bench/aegra_0.11.0_schema.sql", "plugins/module_utils/checkpoint_prune.py",
               "molecule/postgresql/files/prune_race.py")


def copy_to_host(host, relatives=PRUNE_FILES):
    """The collection's files to /opt/molecule-files on the host, at the same paths (the
    scenario's own files at the top)."""
    collection = pathlib.Path(__file__).resolve().parents[3]
    for relative in relatives:
        source = (collection / relative).read_text(encoding="utf-8")
        target = pathlib.Path("/opt/molecule-files") / relative.replace("molecule/postgresql/files/", "")
        host.check_output("mkdir -p %s" % target.parent)
        host.check_output("cat > %s <<'PYEOF'\n%s\nPYEOF" % (target, source))


AS_POSTGRES = "cd /tmp && runuser -u postgres -- "


def scratch_database(host, name):
    """A new database with LangGraph's checkpoint tables, made by its official setup."""
    host.check_output(AS_POSTGRES + "dropdb --if-exists " + name)
    host.check_output(AS_POSTGRES + "createdb " + name)
    host.check_output(
        AS_POSTGRES + TEST_VENV + "/bin/python -c "
        "'from langgraph.checkpoint.postgres import PostgresSaver as S\n"
        f"with S.from_conn_string(\"dbname={name}\") as saver: saver.setup()'"
    )


@pytest.mark.parametrize("engine", [False, True], ids=["checkpoints-only", "with-engine-tables"])
def test_a_thread_resumed_while_pruning_in_batches_is_spared(host, threads, engine):
    """Ten stale threads pruned in batches of 3; the fourth (second batch) is resumed after
    the pruner's scan, before its batch: the batch's re-check spares it, the others go."""
    copy_to_host(host)
    scratch_database(host, "prune_race")
    try:
        out = host.check_output(
            AS_POSTGRES + "python3 /opt/molecule-files/prune_race.py --dsn dbname=prune_race"
            + (" --engine-tables" if engine else "")
        )
    finally:
        host.run(AS_POSTGRES + "dropdb --if-exists prune_race")
    result = json.loads(out.strip().splitlines()[-1])
    stale, resumed = result["stale_at_scan"], result["resumed"]
    assert len(stale) == 10 and result["log"][0].startswith("10 thread(s)"), result
    assert result["pruned"] == 9, result
    assert resumed in result["threads_left"]
    assert not (set(stale) - {resumed}) & set(result["threads_left"])
    assert len(result["threads_left"]) == 11  # the 10 recent threads and the resumed one


def test_prune_benchmark_quick_mode(host, threads):
    """bench/prune_checkpoints.py --quick on a scratch database with Aegra's tables: the
    bench does not rot."""
    copy_to_host(host)
    scratch_database(host, "bench_prune")
    try:
        out = host.check_output(
            AS_POSTGRES + "python3 /opt/molecule-files/bench/prune_checkpoints.py --dsn dbname=bench_prune --quick"
        )
    finally:
        host.run(AS_POSTGRES + "dropdb --if-exists bench_prune")
    lines = {line.split("  ")[0]: line.split() for line in out.splitlines()}
    assert "ratio ours/seed:" in out, out
    # ours leaves no orphans; the hand-written guide's DELETE leaves its blobs and writes behind.
    assert lines["orphaned blobs"][-2:] == ["0", "200"], out
    assert lines["orphaned writes"][-2:] == ["0", "1000"], out
    # and ours removes the engine's thread rows with their runs; the guide's leaves them.
    assert lines["orphaned thread rows"][-2:] == ["0", "100"], out
    assert lines["orphaned runs rows"][-2:] == ["0", "200"], out


def test_database_tasks_print_no_password_even_verbose():
    """With -v Ansible prints each loop item whole, whatever its label says: the loops
    that need no password must not carry one."""
    run = subprocess.run(
        ["ansible-playbook", "-v", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         str(pathlib.Path(__file__).parents[1] / "databases_verbose.yml")],
        capture_output=True, text=True, check=False, timeout=600,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "Create one database per application" in run.stdout
    for secret in ("molecule-langgraph-secret", "molecule-phoenix-secret"):
        assert secret not in run.stdout + run.stderr


def test_clients_find_the_port_and_names_in_the_published_local_fact(host):
    # What the langgraph_server and phoenix roles read on other hosts (filter `published`):
    # the settings, no secret, readable by Ansible's fact gathering.
    fact = host.file("/etc/ansible/facts.d/postgresql.fact")
    assert (fact.user, fact.group, fact.mode) == ("root", "root", 0o644)
    assert json.loads(fact.content_string) == {"port": 5432, "langgraph_db": "langgraph", "langgraph_user": "langgraph",
                                               "phoenix_db": "phoenix", "phoenix_user": "phoenix"}
    assert "secret" not in fact.content_string


DRILL = pathlib.Path(__file__).parent.parent / "files" / "restore_drill.py"
PLAYBOOKS = pathlib.Path(__file__).resolve().parents[3] / "playbooks"
DSN = "postgresql://langgraph:molecule-langgraph-secret@127.0.0.1:5432/langgraph"
# Every row of a table, as one digest: equal digests, equal contents.
DIGEST = "select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} t"
DRILL_TABLES = TABLES + ("store",)


def drill(host, *args: str) -> dict:
    host.check_output("mkdir -p /opt/molecule-files && cat > /opt/molecule-files/restore_drill.py <<'PYEOF'\n%s\nPYEOF"
                      % DRILL.read_text(encoding="utf-8"))
    out = host.check_output(f"{TEST_VENV}/bin/python /opt/molecule-files/restore_drill.py --dsn {DSN} " + " ".join(args))
    return json.loads(out.strip().splitlines()[-1])


def playbook(name: str, *extra: str) -> str:
    run = run_playbook(PLAYBOOKS / name, *extra)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    return " ".join(output.split())


def failed_playbook(name: str, *extra: str) -> str:
    run = run_playbook(PLAYBOOKS / name, *extra)
    assert run.returncode != 0
    return " ".join((run.stdout + run.stderr).split())


def test_restore_drill_the_state_host_lost_and_its_dumps_restored_on_another(tmp_path):
    """The Debian 12 host (PostgreSQL 15) holds a thread waiting before its second node, a
    finished thread and a store item; backup.yml dumps it and copies the dumps to the
    control host. The host is then lost (PostgreSQL stopped, its own dumps deleted), and
    restore.yml restores its newest dumps on the Debian 13 host (PostgreSQL 17), as on a
    replacement machine: every checkpoint, write, blob and store row is back, and the
    waiting thread resumes to the end with LangGraph's own checkpointer."""
    old = testinfra.get_host(f"docker://{scenario_name()}-debian12")
    new = testinfra.get_host(f"docker://{scenario_name()}-debian13")
    for host in (old, new):
        langgraph_venv(host)
    written = drill(old, "--write")
    assert written["next"] == ["second"]
    digests = {table: psql(old, DIGEST.format(table)).stdout for table in DRILL_TABLES}

    store = tmp_path / "store"
    output = playbook("backup.yml", "-e", f"postgresql_backup_store_dir={store}", "-e", "postgresql_backup_now=true")
    copies = sorted(p.name for p in (store / old.backend.get_hostname()).glob("*.dump"))
    assert [name.split("-")[0] for name in copies].count("langgraph") >= 1, copies
    assert (store / old.backend.get_hostname()).stat().st_mode & 0o777 == 0o700
    assert not list((store / old.backend.get_hostname() / ".partial").iterdir())
    # A second copy finds nothing new (each dump's name is its time) and fetches nothing.
    output = playbook("backup.yml", "-e", f"postgresql_backup_store_dir={store}")
    assert f"{old.backend.get_hostname()}: 0 new dump(s) copied" in output

    old.check_output("systemctl stop postgresql && rm -f /var/backups/postgresql/*.dump")
    try:
        # Refusals first, each one sentence, nothing restored.
        refused = failed_playbook("restore.yml", "--limit", new.backend.get_hostname(), "-e", f"postgresql_backup_store_dir={store}",
                                  "-e", f"postgresql_restore_from={old.backend.get_hostname()}", "-e", "postgresql_restore_stamp=20000101T000000Z")
        assert "No dump of the backup run 20000101T000000Z for the database(s) langgraph, phoenix." in refused
        refused = failed_playbook("restore.yml", "--limit", new.backend.get_hostname(), "-e", f"postgresql_backup_store_dir={store}",
                                  "-e", "postgresql_restore_from=nowhere")
        assert "The store holds no dump of nowhere" in refused
        assert count(new, f"select count(*) from checkpoints where thread_id = '{written['interrupted']}'") == 0

        # No site.yml after it: these hosts run PostgreSQL alone (molecule/fleet runs the whole).
        output = playbook("restore.yml", "--limit", new.backend.get_hostname(), "-e", f"postgresql_backup_store_dir={store}",
                          "-e", f"postgresql_restore_from={old.backend.get_hostname()}", "-e", "restore_converge=false")
        assert f"Restored on {new.backend.get_hostname()} the dumps of {old.backend.get_hostname()}: langgraph-" in output
        assert {table: psql(new, DIGEST.format(table)).stdout for table in DRILL_TABLES} == digests
        resumed = drill(new, "--resume", written["interrupted"], written["finished"])
        assert resumed["next_before"] == ["second"] and resumed["values_before"] == {"executions": ["first"]}
        assert resumed["final"] == {"executions": ["first", "second"]}
        assert resumed["finished_values"] == {"executions": ["first", "second"]} and resumed["finished_history"] >= 3
        assert resumed["store"] == {"language": "fr", "thread": written["interrupted"]}
        # The dumps it restored are the new host's newest dumps now.
        newest = {max(name for name in copies if name.startswith(db + "-")) for db in ("langgraph", "phoenix")}
        assert newest <= set(new.check_output("ls /var/backups/postgresql").split())
        # The application's role still owns what the restore created.
        assert "checkpoints" in psql(new, "select tablename from pg_tables where tableowner='langgraph'").stdout.split()
    finally:
        old.check_output("systemctl start postgresql")
