"""Encryption of stored secrets: Fernet keys from the settings, a key file kept in dev, and
no storing of secrets without a key anywhere else."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tollgate import crypto
from tollgate.config import Settings
from tollgate.crypto import DecryptionFailed, SecretBox, SecretKeyMissing

SECRET = "sk-proj-" + "a1B2" * 12


def test_round_trip_and_tokens_differ_each_time() -> None:
    box = SecretBox([crypto.generate_key()])
    first, second = box.encrypt(SECRET), box.encrypt(SECRET)
    assert SECRET not in first and first != second
    assert box.decrypt(first) == box.decrypt(second) == SECRET


def test_another_key_cannot_decrypt() -> None:
    token = SecretBox([crypto.generate_key()]).encrypt(SECRET)
    with pytest.raises(DecryptionFailed):
        SecretBox([crypto.generate_key()]).decrypt(token)


def test_an_altered_token_does_not_decrypt() -> None:
    box = SecretBox([crypto.generate_key()])
    token = box.encrypt(SECRET)
    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    with pytest.raises(DecryptionFailed):
        box.decrypt(flipped)


def test_rotation_decrypts_with_old_keys_and_rotates_to_the_new() -> None:
    old, new = crypto.generate_key(), crypto.generate_key()
    stored = SecretBox([old]).encrypt(SECRET)
    rotated_box = crypto.load(Settings(env="production", secret_key=f" {new} , {old} "))
    assert rotated_box.decrypt(stored) == SECRET
    rotated = rotated_box.rotate(stored)
    assert SecretBox([new]).decrypt(rotated) == SECRET
    with pytest.raises(DecryptionFailed):
        SecretBox([old]).decrypt(rotated)


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="key 2") as refused:
        SecretBox([crypto.generate_key(), "not-a-fernet-key"])
    assert "not-a-fernet-key" not in str(refused.value)


def test_dev_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(env="dev", data_dir=tmp_path / "data")
    key_file = tmp_path / "data" / crypto.KEY_FILE
    assert not key_file.exists()

    token = crypto.load(settings).encrypt(SECRET)
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    written = key_file.read_text()

    # A restart reads the same key back: what was stored still decrypts.
    assert crypto.load(settings).decrypt(token) == SECRET
    assert key_file.read_text() == written
    assert [p.name for p in key_file.parent.iterdir()] == [crypto.KEY_FILE]


def test_processes_starting_together_agree_on_one_dev_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: crypto.dev_key(tmp_path), range(32)))
    assert keys == {(tmp_path / crypto.KEY_FILE).read_text().strip()}
    assert [p.name for p in tmp_path.iterdir()] == [crypto.KEY_FILE]


def test_configured_key_wins_over_the_dev_file(tmp_path: Path) -> None:
    key = crypto.generate_key()
    box = crypto.load(Settings(env="dev", data_dir=tmp_path, secret_key=key))
    assert SecretBox([key]).decrypt(box.encrypt(SECRET)) == SECRET
    assert not (tmp_path / crypto.KEY_FILE).exists()


def test_a_damaged_dev_key_file_is_refused_not_replaced(tmp_path: Path) -> None:
    key_file = tmp_path / crypto.KEY_FILE
    key_file.write_text("garbage\n")
    with pytest.raises(ValueError, match=str(key_file)):
        crypto.load(Settings(env="dev", data_dir=tmp_path))
    assert key_file.read_text() == "garbage\n"


def test_production_without_a_key_refuses_to_store(tmp_path: Path) -> None:
    box = crypto.load(Settings(env="production", data_dir=tmp_path))
    assert not box.can_encrypt
    with pytest.raises(SecretKeyMissing, match="TOLLGATE_SECRET_KEY"):
        box.encrypt(SECRET)
    with pytest.raises(DecryptionFailed):
        box.decrypt(SecretBox([crypto.generate_key()]).encrypt(SECRET))
    # Nothing was generated behind the operator's back.
    assert list(tmp_path.iterdir()) == []


def test_the_key_never_shows_in_settings_repr() -> None:
    key = crypto.generate_key()
    assert key not in repr(Settings(secret_key=key))
