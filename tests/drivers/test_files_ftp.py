"""The ``files`` driver's FTP receiver with a real FTP client (ftplib): uploads become readings;
the login, the file size, the uploads per minute, the folder quota, the disk's free space and
the folder's walls are enforced; a file still being uploaded is never taken."""

from __future__ import annotations

import ftplib
import io
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.config.model import parse_config
from core.reading import Reading
from drivers import make_driver
from drivers.files.driver import FilesDriver
from tests.helpers.station import wait_for

pytestmark = pytest.mark.timeout(60)
VIETNAM = timezone(timedelta(hours=7))
USER, PASSWORD = "logger", "s3cret-pw"


def _driver(tmp_path: Path, **ftp: object) -> FilesDriver:
    data = {
        "station": {"id": "T-01"},
        "signing": {"key": "k"},
        "buffer": {"path": "b.db"},
        "devices": [
            {
                "name": "logger",
                "driver": "files",
                "format": "tt10",
                "folder": str(tmp_path / "in"),
                "ledger": str(tmp_path / "ledger.db"),
                "settle_s": 0,
                "scan_interval_s": 0.05,
                "ftp": {"host": "127.0.0.1", "port": 0, "user": USER, "password": PASSWORD, **ftp},
                "channels": [{"code": "SO2", "param": "SO2", "unit": "mg/Nm3"}],
            }
        ],
        "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
    }
    driver = make_driver(parse_config(data, tmp_path / "agent.toml").devices[0])
    assert isinstance(driver, FilesDriver)
    return driver


def _file(minutes_ago: int = 5, value: float = 1.5) -> bytes:
    at = datetime.now(VIETNAM) - timedelta(minutes=minutes_ago)
    return f"SO2\t{value:.2f}\tmg/Nm3\t{at:%Y%m%d%H%M%S}\t00\r\n".encode()


def _login(driver: FilesDriver, password: str = PASSWORD) -> ftplib.FTP:
    host, port = driver.ftp.address
    ftp = ftplib.FTP()
    ftp.connect(host, port, timeout=10)
    ftp.login(USER, password)
    return ftp


@pytest.fixture
def running(tmp_path):
    started: list[FilesDriver] = []
    got: list[Reading] = []

    def start(**ftp: object) -> FilesDriver:
        driver = _driver(tmp_path, **ftp)
        driver.start(got.extend)
        started.append(driver)
        return driver

    start.got = got  # type: ignore[attr-defined]
    yield start
    for driver in started:
        driver.stop()


def test_an_upload_renamed_into_place_becomes_readings(running, tmp_path):
    driver = running()
    ftp = _login(driver)
    data = _file(value=12.5)  # once: a second boundary may pass before the check
    ftp.storbinary("STOR KT01.txt.tmp", io.BytesIO(data))
    ftp.rename("KT01.txt.tmp", "KT01.txt")
    ftp.quit()
    wait_for(lambda: len(running.got) == 1, 10, "the uploaded file's reading")
    assert running.got[0].value == 12.5
    assert (tmp_path / "in" / "KT01.txt").read_bytes() == data
    assert driver.counts["ftp_uploads"] == 1


def test_a_wrong_password_is_refused_and_nothing_written(running, tmp_path):
    driver = running()
    with pytest.raises(ftplib.error_perm, match="530"):
        _login(driver, "guess")
    assert list((tmp_path / "in").iterdir()) == []


def test_an_upload_larger_than_the_limit_is_cut_and_removed(running, tmp_path):
    driver = running(max_file_bytes=10_000)
    ftp = _login(driver)
    # the server cuts the data connection: the client sees 552, or the reset while sending
    with pytest.raises((ftplib.error_perm, ConnectionError)) as refused:
        ftp.storbinary("STOR big.txt", io.BytesIO(b"x" * 200_000))
    if isinstance(refused.value, ftplib.error_perm):
        assert str(refused.value).startswith("552 File larger than 10000 bytes")
    ftp.close()
    wait_for(lambda: driver.counts.get("ftp_too_large_upload") == 1, 10, "the cut counted")
    wait_for(lambda: not (tmp_path / "in" / "big.txt").exists(), 10, "the cut upload removed")
    assert driver.counts.get("files_taken", 0) == 0


def test_uploads_beyond_the_rate_are_refused_for_the_minute(running):
    driver = running(max_files_per_minute=3)
    ftp = _login(driver)
    for i in range(3):
        ftp.storbinary(f"STOR f{i}.txt", io.BytesIO(_file(10 + i)))
    with pytest.raises(ftplib.error_temp, match="450 More than 3 uploads this minute"):
        ftp.storbinary("STOR f3.txt", io.BytesIO(_file(20)))
    ftp.quit()
    assert driver.counts["ftp_rate_limited"] == 1


def test_a_full_quota_or_disk_refuses_the_upload(running, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "old.bin").write_bytes(b"x" * 5000)
    driver = running(quota_bytes=6000, max_file_bytes=2000)
    ftp = _login(driver)
    with pytest.raises(ftplib.error_temp, match="452 The folder's quota of 6000 bytes"):
        ftp.storbinary("STOR f.txt", io.BytesIO(_file()))
    ftp.quit()
    driver.stop()
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    driver = running(min_free_bytes=free * 2)
    ftp = _login(driver)
    with pytest.raises(ftplib.error_temp, match="452 Not enough free space"):
        ftp.storbinary("STOR f.txt", io.BytesIO(_file()))
    ftp.quit()


@pytest.mark.parametrize(
    "path", ["../escape.txt", "../../escape.txt", "/../escape.txt", "sub/../../escape.txt"]
)
def test_the_logger_cannot_write_outside_the_folder(running, tmp_path, path):
    driver = running()
    ftp = _login(driver)
    try:
        ftp.storbinary(f"STOR {path}", io.BytesIO(_file()))
    except ftplib.error_perm:
        pass  # refused is fine; landing outside is not
    ftp.quit()
    outside = [p for p in tmp_path.rglob("escape.txt") if (tmp_path / "in") not in p.parents]
    assert outside == []


def test_a_symlink_out_of_the_folder_is_not_followed(running, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "secret").mkdir()
    (tmp_path / "in" / "door").symlink_to(tmp_path / "secret")
    driver = running()
    ftp = _login(driver)
    with pytest.raises(ftplib.error_perm):
        ftp.storbinary("STOR door/x.txt", io.BytesIO(_file()))
    ftp.quit()
    assert list((tmp_path / "secret").iterdir()) == []


def test_a_file_being_uploaded_is_not_taken_even_when_it_stalls(running, tmp_path):
    driver = running()
    ftp = _login(driver)
    data = _file(value=7.25)
    conn = ftp.transfercmd("STOR KT01.txt")  # uploaded under its final name, slowly
    conn.sendall(data[:10])
    wait_for(lambda: (tmp_path / "in" / "KT01.txt").exists(), 10, "the upload started")
    scans = driver.scans
    wait_for(lambda: driver.scans >= scans + 5, 10, "five scans during the upload")
    assert running.got == [] and driver.handled == 0
    conn.sendall(data[10:])
    conn.close()
    assert ftp.voidresp().startswith("226")
    ftp.quit()
    wait_for(lambda: len(running.got) == 1, 10, "the completed upload taken")
    assert running.got[0].value == 7.25
    wait_for(lambda: driver.counts.get("files_taken") == 1, 10, "the file recorded as taken")


def test_stou_is_refused(running):
    driver = running()
    ftp = _login(driver)
    with pytest.raises(ftplib.error_perm, match="502"):
        ftp.storbinary("STOU", io.BytesIO(_file()))
    ftp.quit()
