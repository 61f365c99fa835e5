"""The kiosk-exporter command as operators use it: exit codes, output, round trips."""

from __future__ import annotations

import json

import pytest

from exporter.cli import main
from exporter.keys import hash_secret
from exporter.store import open_store
from tests.support import databases
from tests.support.service import RunningService, run_cli
from tests.support.terminal import on_a_terminal


def test_kiosk_add_prints_the_key_once_and_stores_only_its_hash(cli, database_url):
    code, out, _ = cli(
        "kiosk", "add", "--name", "Kiosk-Entrance", "--location", "Building A", "--json"
    )
    assert code == 0
    created = json.loads(out)
    assert created["api_key"].startswith(created["key_prefix"])
    assert len(created["api_key"]) >= 43  # 32 random bytes, url-safe base64
    raw = databases.stored_bytes(database_url)
    assert created["api_key"].encode() not in raw
    assert hash_secret(created["api_key"]).encode() in raw
    code, out, _ = cli("kiosk", "list", "--json")
    assert "api_key" not in out
    assert json.loads(out)[0]["name"] == "Kiosk-Entrance"


def test_options_go_before_or_after_the_subcommand(cli, database_url, capsys):
    assert (
        main(["kiosk", "add", "--name", "A", "--location", "L", "--database", database_url], {})
        == 0
    )
    assert main(["--database", database_url, "kiosk", "list"], {}) == 0
    assert "A" in capsys.readouterr().out


def test_database_from_a_config_file(cli, tmp_path, database_url, capsys):
    config = tmp_path / "exporter.yml"
    config.write_text(f"database: {database_url}\n")
    assert (
        main(["kiosk", "add", "--config", str(config), "--name", "A", "--location", "L"], {}) == 0
    )
    capsys.readouterr()
    assert main(["kiosk", "list", "--json"], {"KIOSK_EXPORTER_CONFIG": str(config)}) == 0
    assert [k["name"] for k in json.loads(capsys.readouterr().out)] == ["A"]


def test_a_duplicate_name_is_one_clear_line_and_exit_1(cli):
    cli("kiosk", "add", "--name", "A", "--location", "L")
    code, _out, err = cli("kiosk", "add", "--name", "A", "--location", "Elsewhere")
    assert code == 1
    assert err.strip() == "kiosk-exporter: a kiosk named 'A' already exists"
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ("kiosk", "deactivate", "99"),
        ("kiosk", "rotate-key", "99"),
        ("kiosk", "remove", "99", "--yes"),
        ("token", "revoke", "7"),
    ],
)
def test_unknown_ids_exit_1_with_a_message(cli, args):
    code, _, err = cli(*args)
    assert code == 1
    assert "no " in err and "id" in err


def test_a_bad_database_url_is_a_config_error_exit_2(capsys):
    assert main(["--database", "oracle://x/y", "kiosk", "list"], {}) == 2
    assert "database" in capsys.readouterr().err


def test_rotate_deactivate_activate_remove_round_trip(cli, database_url):
    _, out, _ = cli("kiosk", "add", "--name", "A", "--location", "L", "--json")
    created = json.loads(out)
    code, out, _ = cli("kiosk", "rotate-key", str(created["id"]), "--json")
    new_key = json.loads(out)["api_key"]
    assert code == 0 and new_key != created["api_key"]
    store = open_store(database_url)
    assert store.find_kiosk_by_key(hash_secret(created["api_key"])) is None
    assert store.find_kiosk_by_key(hash_secret(new_key)).id == created["id"]
    assert cli("kiosk", "deactivate", str(created["id"]))[0] == 0
    assert store.get_kiosk(created["id"]).is_active is False
    assert cli("kiosk", "activate", str(created["id"]))[0] == 0
    assert store.get_kiosk(created["id"]).is_active is True
    code, out, _ = cli("kiosk", "update", str(created["id"]), "--location", "Hall 2", "--json")
    assert json.loads(out)["location"] == "Hall 2"
    assert cli("kiosk", "remove", str(created["id"]), "--yes")[0] == 0
    assert store.list_kiosks() == []
    store.close()


def test_remove_asks_first_on_a_terminal(cli, database_url):
    assert cli("kiosk", "add", "--name", "A", "--location", "L")[0] == 0
    refused = on_a_terminal(["kiosk", "remove", "1"], database_url, answer="n")
    assert refused.returncode == 1 and "Remove kiosk 1 'A' (L)?" in refused.output
    assert on_a_terminal(["kiosk", "remove", "1"], database_url, answer="y").returncode == 0
    assert json.loads(cli("kiosk", "list", "--json")[1]) == []


def test_remove_without_yes_and_without_a_terminal_is_a_usage_error(cli, database_url):
    assert cli("kiosk", "add", "--name", "A", "--location", "L")[0] == 0
    piped = run_cli("kiosk", "remove", "1", database=database_url, input_text="y\n")
    assert piped.returncode == 2
    assert piped.stderr.strip().splitlines() == [
        "kiosk-exporter: --yes: standard input is not a terminal: pass --yes to confirm"
    ]
    assert len(json.loads(cli("kiosk", "list", "--json")[1])) == 1


def test_import_a_csv_fleet_prints_every_key_once(cli, tmp_path):
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(
        "name,location\n"
        "Kiosk-Entrance,Building A - Main Entrance\n"
        'Kiosk-Cafeteria,"Building B, Floor 1"\n'
    )
    code, out, _ = cli("kiosk", "import", str(fleet))
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "id,name,location,api_key"
    assert len(lines) == 3
    assert '"Building B, Floor 1"' in lines[2]


def test_import_a_yaml_fleet_as_json(cli, tmp_path):
    fleet = tmp_path / "fleet.yml"
    fleet.write_text("- {name: K1, location: Hall}\n- {name: K2, location: Hall}\n")
    code, out, _ = cli("kiosk", "import", str(fleet), "--json")
    assert code == 0
    assert [k["name"] for k in json.loads(out)] == ["K1", "K2"]


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("fleet.csv", "name,location\nK1,Hall\nK2,\n", "row 3"),
        ("fleet.csv", "name,location\nK1,Hall\nK1,Hall 2\n", "row 3: duplicate name"),
        ("fleet.csv", "name,place\nK1,Hall\n", "row 1"),
        ("fleet.csv", "name,location\nExisting,Hall\n", "'Existing' already exists"),
        ("fleet.csv", "name,location,serial\nK1,Hall,123\n", "row 1: unknown column 'serial'"),
        ("fleet.csv", "name,location\nK1,Hall\nK2,Hall,extra\n", "row 3: more values than"),
        ("fleet.csv", 'name,location\nK1,Hall\n"K\tTab",Hall\n', "row 3: name contains control"),
        (
            "fleet.yaml",
            "- {name: K1, location: Hall}\n- {name: K2, location: [a]}\n",
            "row 2: location",
        ),
        ("fleet.yaml", "- {name: 12, location: Hall}\n", "row 1: name must be text (quote it"),
        ("fleet.yaml", "- {name: K1, location: Hall, notes: x}\n", "row 1: unknown field 'notes'"),
        ("fleet.yaml", "kiosks: {name: K1}\n", "expected a list of {name, location} entries"),
        ("fleet.yaml", "[unclosed\n", "not valid YAML"),
        ("fleet.csv", "name,location,name\nA,L,B\n", "row 1: the column 'name' appears twice"),
        ("fleet.csv", "name,location,\nA,L,\n", "row 1: a column without a name"),
        ("fleet.yaml", "kiosks: [{name: K1, location: L}]\nextra: 1\n", "top-level key 'extra'"),
        ("fleet.yaml", "- {name: K1, location: L, '': x}\n", "row 1: unknown field ''"),
        ("fleet.yaml", '- {name: "K\\u2028One", location: L}\n', "row 1: name contains control"),
        ("fleet.yaml", '- {name: "K\\x85One", location: L}\n', "row 1: name contains control"),
    ],
)
def test_a_bad_row_rejects_the_whole_import(
    cli, tmp_path, database_url, filename, content, message
):
    cli("kiosk", "add", "--name", "Existing", "--location", "Hall")
    fleet = tmp_path / filename
    fleet.write_text(content)
    code, out, err = cli("kiosk", "import", str(fleet))
    assert code == 1
    assert message in err
    assert "row 0" not in err
    assert "kk_" not in out
    store = open_store(database_url)
    assert [k.name for k in store.list_kiosks()] == ["Existing"]
    store.close()


def test_a_large_import_is_one_transaction(cli, tmp_path, database_url):
    fleet = tmp_path / "fleet.csv"
    fleet.write_text("name,location\n" + "".join(f"kiosk-{n},Site {n % 9}\n" for n in range(500)))
    code, out, _ = cli("kiosk", "import", str(fleet), "--json")
    assert code == 0
    keys = [k["api_key"] for k in json.loads(out)]
    assert len(set(keys)) == 500


def test_tokens_add_list_revoke(cli):
    code, out, _ = cli("token", "add", "--name", "back-office", "--json")
    created = json.loads(out)
    assert code == 0 and created["token"].startswith("kt_")
    _, out, _ = cli("token", "list", "--json")
    assert json.loads(out)[0]["revoked"] is False
    assert created["token"] not in out
    assert cli("token", "revoke", str(created["id"]))[0] == 0
    _, out, _ = cli("token", "list", "--json")
    assert json.loads(out)[0]["revoked"] is True


def test_empty_names_are_usage_errors(cli):
    code, _, err = cli("kiosk", "add", "--name", "  ", "--location", "L")
    assert code == 2
    assert "--name" in err


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--name", "N" * 129, "--location", "L"), "--name"),
        (("--name", "N", "--location", "L" * 257), "--location"),
        (("--name", "tab\there", "--location", "L"), "--name"),
        (("--name", "N", "--location", "Hall\nA"), "--location"),
    ],
)
def test_bad_names_and_locations_are_usage_errors_without_traceback(cli, args, flag):
    code, _, err = cli("kiosk", "add", *args)
    assert code == 2
    assert flag in err
    assert "Traceback" not in err


def test_an_unreadable_fleet_file_is_one_line_not_a_traceback(cli, tmp_path):
    code, _, err = cli("kiosk", "import", str(tmp_path / "missing.csv"))
    assert code == 2
    assert "cannot read the fleet file" in err
    latin1 = tmp_path / "fleet.csv"
    latin1.write_bytes("name,location\nCafé,Hall\n".encode("latin-1"))
    assert cli("kiosk", "import", str(latin1))[0] == 2


def test_a_csv_saved_by_excel_with_a_bom_imports(cli, tmp_path):
    fleet = tmp_path / "fleet.csv"
    fleet.write_bytes("name,location\nK1,Hall\n".encode("utf-8-sig"))
    assert cli("kiosk", "import", str(fleet))[0] == 0


def test_a_new_sqlite_file_created_by_serve_is_announced(tmp_path):
    service = RunningService(tmp_path, database=f"sqlite:///{tmp_path / 'typo.db'}")
    with service:
        assert service.wait_until(
            lambda: any("new empty database created at sqlite:///" in x for x in service.log_lines)
        )


def test_serve_on_a_port_already_taken_says_so_in_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            database=f"sqlite:///{tmp_path}/k.db",
        )
    assert result.returncode == 1
    assert f"kiosk-exporter: cannot listen on 127.0.0.1:{port}: Address already in use" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
