"""Logs in to the emulator with python-tds (pytds), runs SELECT 1 and prints the result.

Usage: python3 pytds_select_one.py HOST PORT USER PASSWORD
Without cafile, pytds offers ENCRYPT_NOT_SUP, so this exercises the plaintext login path.
Exit code 3 with a message when pytds is missing (install it with `pip install python-tds`).
"""
import sys

try:
    import pytds
except ImportError:
    print("MISSING pytds: run `pip install python-tds`", file=sys.stderr)
    sys.exit(3)

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with pytds.connect(
    dsn=host,
    port=port,
    user=user,
    password=password,
    database="master",
    autocommit=True,
    login_timeout=20,
    timeout=20,
    disable_connect_retry=True,
) as conn:
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        print("RESULT", cursor.fetchone()[0])
        cursor.execute("SELECT ROWS 3 BYTES 5")
        rows = cursor.fetchall()
        print("ROWS", len(rows), len(rows[0][0]))
