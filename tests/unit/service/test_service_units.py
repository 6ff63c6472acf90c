"""Settings, secrets, backup-file paths, validation-error mapping and stats formatting."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cachemigrate.cli.service_cmds import service_settings as cli_settings
from cachemigrate.errors import ConfigError
from cachemigrate.service.crypto import Cipher
from cachemigrate.service.settings import Settings
from cachemigrate.service.specs import file_kind, resolve_backup_file
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
    s = Settings(buckets={"b": f"file://{tmp_path}"})
    assert resolve_backup_file(s, "b", "dump.rdb") == tmp_path.resolve() / "dump.rdb"
    assert resolve_backup_file(s, "b", "sub/x.rdb") == tmp_path.resolve() / "sub" / "x.rdb"
    for bad in ("../x.rdb", "sub/../../x.rdb", "/etc/passwd", "a\x00b"):
        with pytest.raises(ConfigError):
            resolve_backup_file(s, "b", bad)
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(ConfigError, match="outside"):
        resolve_backup_file(s, "b", "link/passwd")
    with pytest.raises(ConfigError, match="not configured"):
        resolve_backup_file(s, "other", "x.rdb")


def test_file_kinds(tmp_path: Path) -> None:
    assert file_kind([tmp_path / "a.rdb", tmp_path / "b.RDB"]).value == "rdb_files"
    assert file_kind([tmp_path / "a.aof"]).value == "aof_files"
    # Archives are read (their members are RDB/AOF files); RDB files may come with AOF ones.
    assert file_kind([tmp_path / "a.zip", tmp_path / "b.tar.gz"]).value == "aof_files"
    assert file_kind([tmp_path / "a.rdb", tmp_path / "b.aof"]).value == "aof_files"
    for bad in ([tmp_path / "a.7z"], [tmp_path / "a.rdb", tmp_path / "notes.txt"]):
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
