"""Hashes made by Django's own hashers, for tests/it/django_hashes.rs: one JSON object per line,
{"hasher", "password", "hash", "django_checks"} where django_checks is Django's check_password of
the password against its hash (a sanity check that the row is right), or {"hasher", "password",
"refused"} when the hasher will not hash that password."""
import json
import sys

from django.conf import settings

HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.BCryptPasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
]
settings.configure(PASSWORD_HASHERS=HASHERS)

import django  # noqa: E402

django.setup()
from django.contrib.auth.hashers import check_password, get_hashers, make_password  # noqa: E402

PASSWORDS = [
    "correct horse battery staple",
    "ünïcødé pässwörd ✓ 密码",
    # Longer than an HMAC block (64 bytes: hashed first) and than bcrypt's 72 bytes.
    "a long passphrase " * 6,
    "x",
]

for hasher in get_hashers():
    for password in PASSWORDS:
        try:
            encoded = make_password(password, hasher=hasher.algorithm)
        except ValueError as e:
            print(json.dumps({"hasher": hasher.algorithm, "password": password, "refused": str(e)}))
            continue
        row = {
            "hasher": hasher.algorithm,
            "password": password,
            "hash": encoded,
            "django_checks": check_password(password, encoded),
        }
        print(json.dumps(row))
sys.stdout.flush()
