"""Settings, secrets, backup-file paths, validation-error mapping and stats formatting."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cachemigrate.cli.service_cmds import service_settings as cli_settings
from cachemigrate.errors import ConfigError
from cachemigrate.service.crypto import Cipher
from cachemigrate.service.settings import BucketConfig, Settings
from cachemigrate.service.specs import check_import, file_kind, import_source
from cachemigrate.service.states import normalize_status


def test_refuses_to_start_without_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CACHEMIGRATE_SECRET_KEY"):
        Cipher.from_settings(Settings(data_dir=tmp_path))
    with pytest.raises(ConfigError, match="Fernet"):
        Cipher.from_settings(Settings(data_dir=tmp_path, secret_key="short"))
    dev = Cipher.from_settings(Settings(data_dir=tmp_path, dev_mode=True))
    token = dev.encrypt("pw")
    # The generated dev key is kept, so secrets survive a restart.
    assert Cipher.from_settings(Settings(data_dir=tmp_path, dev_mode=True)).decrypt(token) == "pw"
    assert (tmp_path / "dev-secret.key").stat().st_mode & 0o777 == 0o600


def test_cipher_round_trip_and_wrong_key() -> None:
    a, b = Cipher(Fernet.generate_key()), Cipher(Fernet.generate_key())
    assert a.decrypt(a.encrypt("s3cret")) == "s3cret"
    assert a.encrypt("s3cret") != "s3cret"
    assert a.decrypt_optional(None) is None and a.encrypt_optional(None) is None
    with pytest.raises(ConfigError):
        b.decrypt(a.encrypt("x"))


def test_several_keys_newest_first() -> None:
    """The newest key encrypts, every configured key decrypts; ``rotate`` moves a value to the newest."""
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old = Cipher(key_a)
    value, token = old.encrypt("s3cret"), old.issue({"kind": "token"})
    both = Cipher.from_settings(Settings(secret_key=f"{key_b}, {key_a}"))
    assert both.key_count == 2 and both.decrypt(value) == "s3cret" and both.open(token) == {"kind": "token"}
    newest = Cipher(key_b)
    assert newest.decrypt(both.encrypt("x")) == "x"  # new values are under B
    with pytest.raises(ConfigError, match="any configured key"):
        newest.decrypt(value)
    rotated = both.rotate(value)
    assert newest.decrypt(rotated) == "s3cret" and newest.open(both.rotate(token)) == {"kind": "token"}
    with pytest.raises(ConfigError, match="any configured key"):
        old.decrypt(rotated)
    with pytest.raises(ConfigError, match="any configured key"):
        newest.rotate(value)
    with pytest.raises(ConfigError, match="key 2 of 2 in secret_key is not a Fernet key"):
        Cipher.from_settings(Settings(secret_key=f"{key_b},short"))
    with pytest.raises(ConfigError, match="no key"):
        Cipher.from_settings(Settings(secret_key=" , "))


def test_every_encrypted_column_is_rotated() -> None:
    """`secrets rotate` re-encrypts models.ENCRYPTED: each ``*_enc`` column of the models is there."""
    from cachemigrate.service.db.models import ENCRYPTED, Base

    listed = {(model.__tablename__, column) for model, columns in ENCRYPTED.items() for column in columns}
    found = {
        (table.name, column.name)
        for table in Base.metadata.tables.values()
        for column in table.columns
        if column.name.endswith("_enc")
    }
    assert listed == found and len(found) == 4


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI (the edge) reads CACHEMIGRATE_* variables; its options win over them."""
    monkeypatch.setenv("CACHEMIGRATE_PORT", "9999")
    monkeypatch.setenv("CACHEMIGRATE_HOST", "0.0.0.0")
    monkeypatch.setenv("CACHEMIGRATE_BUCKETS", f'{{"b1": "file://{tmp_path}"}}')
    monkeypatch.setenv("CACHEMIGRATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CACHEMIGRATE_SECRET_KEY", "not-shown,old-key")
    s = cli_settings(host="127.0.0.2")
    assert s.secret_keys() == ["not-shown", "old-key"]
    assert type(s) is Settings and s.host == "127.0.0.2"
    assert s.port == 9999 and s.bucket_directory("b1") == tmp_path.resolve()
    assert "not-shown" not in repr(s)
    assert Settings().port == 8080  # the service itself never looks at the environment
    monkeypatch.setenv("CACHEMIGRATE_PORT", "x")
    with pytest.raises(ConfigError, match="CACHEMIGRATE_PORT"):
        cli_settings()
    assert s.bucket_directory("nope") is None
    assert s.sqlalchemy_url() == f"sqlite:///{tmp_path.resolve()}/cachemigrate.db"
    assert Settings(database_url="postgresql+psycopg://h/db").sqlalchemy_url() == "postgresql+psycopg://h/db"
    with pytest.raises(ConfigError, match="file://"):
        Settings(buckets={"s3": "s3://x"}).bucket_directory("s3")


def test_backup_paths_stay_inside_the_bucket(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "dump.rdb").write_bytes(b"REDIS0009")
    (tmp_path / "sub" / "x.rdb").write_bytes(b"REDIS0009")
    s = Settings(buckets={"b": BucketConfig(url=f"file://{tmp_path}", projects=("p1",))})
    check_import(s, "p1", "b", ["dump.rdb", "sub/x.rdb"])
    spec = import_source(s, "p1", {"bucket_name": "b", "files": [{"file_name": "sub/x.rdb"}]})
    assert spec.paths == ("sub/x.rdb",) and spec.root == str(tmp_path.resolve())  # names stay relative
    (tmp_path / "link").symlink_to("/etc")
    cases = {"../x.rdb": "outside", "sub/../../x.rdb": "outside", "/etc/passwd.rdb": "relative",
             "a\x00b.rdb": "not a file name", "link/passwd.rdb": "outside", "missing.rdb": "not found"}
    for bad, words in cases.items():
        with pytest.raises(ConfigError, match=words):
            check_import(s, "p1", "b", [bad])
    with pytest.raises(ConfigError, match="not configured"):
        check_import(s, "p1", "other", ["x.rdb"])


def test_buckets_serve_only_the_projects_bound_to_them(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    s = Settings(buckets={
        "plain": url,  # a plain string still parses: bound to no project
        "unbound": BucketConfig(url=url),
        "mine": BucketConfig(url=url, projects=("p1", "p2")),
        "shared": BucketConfig(url=url, projects=("*",)),
    })
    assert s.bucket_location("plain") is not None  # the operator's view: still a bucket (backup_store)
    for bucket in ("plain", "unbound", "nope"):
        assert s.project_bucket("p1", bucket) is None
    assert s.project_bucket("p1", "mine") == s.project_bucket("p2", "mine") == s.bucket_location("mine")
    assert s.project_bucket("p3", "mine") is None and s.project_bucket("", "mine") is None
    assert s.project_bucket("p3", "shared") is not None
    # From the environment: JSON objects with "projects".
    env = Settings.model_validate({"buckets": {"b": {"url": url, "projects": ["p1"]}}})
    assert env.bucket_projects("b") == ("p1",) and env.bucket_projects("nope") == ()
    # Not bound and not there: one answer, word for word.
    answers = set()
    for bucket in ("unbound", "nope"):
        with pytest.raises(ConfigError) as exc:
            check_import(s, "p1", bucket, ["x.rdb"])
        answers.add(str(exc.value).replace(repr(bucket), "B"))
    assert len(answers) == 1


def test_file_kinds(tmp_path: Path) -> None:
    assert file_kind(["a.rdb", "b.RDB"]).value == "rdb_files"
    assert file_kind(["a.aof"]).value == "aof_files"
    # Archives are read (their members are RDB/AOF files); RDB files may come with AOF ones.
    assert file_kind(["a.zip", "b.tar.gz"]).value == "aof_files"
    assert file_kind(["a.rdb", "b.aof"]).value == "aof_files"
    assert file_kind(["appendonlydir"], lambda name: name == "appendonlydir").value == "aof_files"
    for bad in (["a.7z"], ["a.rdb", "notes.txt"], ["appendonlydir"]):
        with pytest.raises(ConfigError, match="unsupported backup file type"):
            file_kind(bad)


def test_statuses() -> None:
    assert normalize_status("incrmigrating") == "INCRMIGEATING"


SERVICE = Path(__file__).resolve().parents[3] / "src" / "cachemigrate" / "service"


def test_settings_are_read_at_the_edge() -> None:
    """Nothing under service/ reads the environment (Settings is built by the CLI or the caller)."""
    readers = []
    for path in sorted(SERVICE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for needle in ("os.environ", "getenv", "pydantic_settings", "BaseSettings"):
            if needle in text:
                readers.append(f"{path.relative_to(SERVICE)}: {needle}")
    assert not readers, readers


def test_bound_buckets_never_hold_the_services_own_files(tmp_path: Path) -> None:
    data = tmp_path / "data"

    def settings(url: str, *, projects: tuple[str, ...] = ("p1",), **kw: object) -> Settings:
        return Settings.model_validate(
            {"data_dir": data, "buckets": {"b": BucketConfig(url=url, projects=projects)}, **kw}
        )

    assert settings(f"file://{tmp_path / 'bucket'}").check_buckets() == []
    assert settings(f"file://{tmp_path}", projects=()).check_buckets() == ["b"]  # unbound: only warned
    for url in (f"file://{tmp_path}", f"file://{data / 'uploads'}", f"file://{data / 'backups'}"):
        with pytest.raises(ConfigError, match="overlaps the data directory"):
            settings(url).check_buckets()
    with pytest.raises(ConfigError, match="is the backup store"):
        settings("s3://bkt/tenant", backup_store="b").check_buckets()
    with pytest.raises(ConfigError, match="overlaps the backup store"):
        settings("s3://bkt", backup_store="s3://bkt/backups").check_buckets()
    assert settings("s3://bkt/tenant", backup_store="s3://bkt/backups").check_buckets() == []
    with pytest.raises(ConfigError, match="expected file:///directory or s3://bucket"):
        settings("ftp://x").check_buckets()


def test_import_file_lists_are_bounded_and_without_repeats() -> None:
    from pydantic import ValidationError

    from cachemigrate.service.api.schemas import MAX_IMPORT_FILES, BackupFilesBody

    def body(count: int) -> BackupFilesBody:
        return BackupFilesBody.model_validate({"files": [{"file_name": f"{i}.rdb"} for i in range(count)]})

    ok = body(MAX_IMPORT_FILES)
    assert ok.files is not None and len(ok.files) == MAX_IMPORT_FILES
    with pytest.raises(ValidationError, match="at most 1000"):
        body(MAX_IMPORT_FILES + 1)
    for names in (["a.rdb", "a.rdb"], ["d/a.rdb", "d/./a.rdb"], ["a.rdb", "b.rdb", "./a.rdb"]):
        with pytest.raises(ValidationError, match="named more than once"):
            BackupFilesBody.model_validate({"files": [{"file_name": n} for n in names]})
