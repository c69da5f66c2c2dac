"""Hostile archives against ``archives.safe_extract``: every archive is crafted here, at test
time (no committed binaries). Whatever an archive holds, extraction must never create or change
anything outside the target folder, and a refused archive must leave nothing behind."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from course_utils import archives as ar
from course_utils.datafiles import DataFileError

# --- crafting archives ---------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    kind: str  # file | dir | sym | hard | chr | fifo
    name: str
    data: bytes = b""
    link: str = ""


def write_tar(path: Path, members: list[Member], mode: str = "w") -> Path:
    with tarfile.open(path, mode, format=tarfile.GNU_FORMAT) as tf:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.mode = 0o755 if m.kind == "dir" else 0o644
            if m.kind == "file":
                info.size = len(m.data)
                tf.addfile(info, io.BytesIO(m.data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
                         "fifo": tarfile.FIFOTYPE}[m.kind]
            info.linkname = m.link
            tf.addfile(info)
    return path


def snapshot(folder: Path, skip: set[Path] = frozenset()) -> dict[str, tuple]:
    """Every path under ``folder`` (links not followed) with its type and content."""
    seen: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path in skip:
                continue
            st_ = path.lstat()
            if stat.S_ISLNK(st_.st_mode):
                seen[str(path.relative_to(folder))] = ("link", os.readlink(path))
            elif stat.S_ISREG(st_.st_mode):
                seen[str(path.relative_to(folder))] = ("file", path.read_bytes(), st_.st_ino)
            else:
                seen[str(path.relative_to(folder))] = ("dir",)
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip
                       and not os.path.islink(Path(dirpath, d))]
    return seen


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """tmp_path/outside holds files an attacker would like to change; tmp_path/work/target is
    where archives go."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "flag").write_text("original")
    (tmp_path / "work").mkdir()
    return tmp_path


def assert_refused_cleanly(archive: Path, target: Path, before: dict, sandbox: Path,
                           allow_links: bool = False) -> DataFileError:
    with pytest.raises(DataFileError) as info:
        ar.safe_extract(archive, target, allow_links=allow_links)
    assert snapshot(sandbox, {archive}) == before, "something outside the target changed"
    assert not target.exists(), "a refused archive left a (partial) target folder"
    leftovers = [p.name for p in target.parent.iterdir() if p != archive]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    assert str(archive) in str(info.value), "the error must name the archive"
    return info.value


# --- the CVE-2025-4517 shape ----------------------------------------------------------------

def cve_2025_4517_members(target: Path) -> list[Member]:
    """Long directory names with a symlink beside each, so that the unexpanded path to the last
    link fits PATH_MAX but the expanded one does not; that last link climbs back to the target,
    ``escape`` climbs one more level (outside), then a hardlink to a file outside is created
    through ``escape`` and written through, and a new file is created outside."""
    steps = "abcdefghijklmnop"
    path_max = os.pathconf(target.parent, "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
    component = "d" * ((path_max - len(str(target)) - 1) // (len(steps) + 1))
    members, path = [], ""
    for letter in steps:
        members.append(Member("dir", os.path.join(path, component)))
        members.append(Member("sym", os.path.join(path, letter), link=component))
        path = os.path.join(path, component)
    long_link = os.path.join(*steps, "l" * 254)
    members.append(Member("sym", long_link, link=os.path.join(*[".."] * len(steps))))
    members.append(Member("sym", "escape", link=os.path.join(long_link, "..")))
    members.append(Member("hard", "flaglink", link="escape/outside/flag"))
    members.append(Member("file", "flaglink", b"overwritten"))
    members.append(Member("file", "escape/outside/newfile", b"new"))
    return members


@pytest.mark.parametrize("allow_links", [False, True])
def test_cve_2025_4517_shape_is_refused_and_writes_nothing_outside(sandbox, allow_links):
    target = sandbox / "work" / "target"
    # the chain climbs from the target to its parent: make "escape/outside/flag" exist there
    (sandbox / "work" / "outside").mkdir()
    (sandbox / "work" / "outside" / "flag").write_text("original")
    archive = write_tar(sandbox / "work" / "cve.tar", cve_2025_4517_members(target))
    before = snapshot(sandbox, {archive})
    with pytest.raises(DataFileError):
        ar.safe_extract(archive, target, allow_links=allow_links)
    assert (sandbox / "work" / "outside" / "flag").read_text() == "original"
    assert not (sandbox / "work" / "outside" / "newfile").exists()
    assert snapshot(sandbox, {archive}) == before
    assert sorted(p.name for p in (sandbox / "work").iterdir()) == ["cve.tar", "outside"]


@pytest.mark.parametrize("allow_links", [False, True])
def test_three_member_dot_dotdot_chain_is_refused(sandbox, allow_links):
    # x -> ., x/y -> .., y/PWNED: on Pythons without tarfile.data_filter this wrote PWNED
    # beside the target.
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "chain.tar", [
        Member("sym", "x", link="."), Member("sym", "x/y", link=".."),
        Member("file", "y/PWNED", b"pwned")])
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {sandbox / "work" / "chain.tar"}),
                                 sandbox, allow_links)
    assert not (sandbox / "work" / "PWNED").exists()
    assert isinstance(err, ar.UnsafeArchiveError)
    assert "'x" in str(err)  # names the member


def test_link_whose_target_escapes_only_once_an_earlier_link_exists(sandbox):
    # "s" points to the target itself, so "s/.." is the target's parent: outside, though the
    # text "s/.." looks harmless.
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "a.tar", [
        Member("sym", "s", link="."), Member("sym", "up", link="s/.."),
        Member("file", "ok.txt", b"fine")])
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {sandbox / "work" / "a.tar"}),
                                 sandbox, allow_links=True)
    assert "'up'" in str(err)


def test_link_that_only_escapes_after_a_later_member_exists(sandbox):
    # "up -> s/.." is created while "s" does not exist yet; "s -> ." comes later and makes it
    # point outside. Only a check after the last member catches this.
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "late.tar", [
        Member("sym", "up", link="s/.."), Member("sym", "s", link=".")])
    assert_refused_cleanly(archive, target, snapshot(sandbox, {sandbox / "work" / "late.tar"}),
                           sandbox, allow_links=True)


def test_hardlink_to_a_symlink_is_refused(sandbox):
    # a hardlink whose source is a symlink stored deeper than the hardlink: re-created at a
    # shallower place, the relative link would point elsewhere
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "h.tar", [
        Member("dir", "a"), Member("dir", "a/b"), Member("sym", "a/b/l", link="../../.."),
        Member("hard", "h", link="a/b/l")])
    assert_refused_cleanly(archive, target, snapshot(sandbox, {sandbox / "work" / "h.tar"}),
                           sandbox, allow_links=True)


@pytest.mark.parametrize("members, words", [
    ([Member("file", "/abs/evil.txt", b"x")], "absolute"),
    ([Member("file", "../evil.txt", b"x")], "'..'"),
    ([Member("file", "a/../../evil.txt", b"x")], "'..'"),
    ([Member("file", "C:/evil.txt", b"x")], "absolute"),
    ([Member("chr", "dev")], "special"),
    ([Member("blk", "disk")], "special"),
    ([Member("fifo", "pipe")], "special"),
    ([Member("sym", "l", link="/etc/passwd")], "link"),
    ([Member("hard", "h", link="/etc/passwd")], "link"),
    ([Member("file", "ok", b"1"), Member("hard", "h", link="ok")], "allow_links"),
])
def test_unsafe_members_are_refused_with_nothing_left(sandbox, members, words):
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "bad.tar", [Member("file", "first.txt", b"ok"), *members])
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {sandbox / "work" / "bad.tar"}),
                                 sandbox)
    assert isinstance(err, ar.UnsafeArchiveError)
    assert words in str(err)
    assert repr(members[-1].name) in str(err), "the error must name the member"


@pytest.mark.parametrize("allow_links", [False, True])
@pytest.mark.parametrize("link", ["/etc/passwd", "../outside/flag", "a/../../x", "missing"])
def test_symlinks_out_of_the_target_or_dangling_are_refused(sandbox, allow_links, link):
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "l.tar", [Member("dir", "a"), Member("sym", "a/l", link=link)])
    assert_refused_cleanly(archive, target, snapshot(sandbox, {sandbox / "work" / "l.tar"}),
                           sandbox, allow_links)


@pytest.mark.parametrize("members, words", [
    ([Member("file", "a", b"1"), Member("file", "a/b", b"2")], "file"),
    ([Member("dir", "a"), Member("file", "a", b"2")], "directory"),
    ([Member("file", "a", b"1"), Member("dir", "a")], "file"),
])
def test_same_name_file_and_directory_is_a_clear_error(sandbox, members, words):
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "clash.tar", members)
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {sandbox / "work" / "clash.tar"}),
                                 sandbox)
    assert isinstance(err, ar.ArchiveError) and words in str(err)
    assert repr(members[-1].name) in str(err)


def test_corrupt_zip_member_is_a_clear_error_and_leaves_nothing(sandbox):
    target = sandbox / "work" / "target"
    archive = sandbox / "work" / "corrupt.zip"
    payload = os.urandom(1000)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good.txt", b"fine")
        zf.writestr("bad.bin", payload)  # stored: flip a data byte, the CRC no longer matches
    raw = bytearray(archive.read_bytes())
    raw[raw.index(payload) + 500] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.raises(zipfile.BadZipFile):  # what the standard library raises
        with zipfile.ZipFile(archive) as zf:
            zf.read("bad.bin")
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {archive}), sandbox)
    assert isinstance(err, ar.ArchiveError) and "'bad.bin'" in str(err) and "corrupt" in str(err)


def test_corrupt_deflated_zip_member_is_a_clear_error(sandbox):
    target = sandbox / "work" / "target"
    archive = sandbox / "work" / "deflate.zip"
    text = b"hello world, " * 500
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("t.txt", text)
    raw = bytearray(archive.read_bytes())
    compressed = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    body = compressed.compress(text) + compressed.flush()
    start = raw.index(body[:20])
    for i in range(start + 5, start + 25):
        raw[i] ^= 0x5A
    archive.write_bytes(bytes(raw))
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {archive}), sandbox)
    assert "'t.txt'" in str(err)


def test_truncated_tar_gz_is_a_clear_error(sandbox):
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "t.tar.gz",
                        [Member("file", f"f{i}", os.urandom(3000)) for i in range(5)], mode="w:gz")
    archive.write_bytes(archive.read_bytes()[:-4000])
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {archive}), sandbox)
    assert isinstance(err, ar.ArchiveError)


def test_zip_symlink_refused_unless_allowed_and_inside(sandbox):
    target = sandbox / "work" / "target"
    archive = sandbox / "work" / "sym.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data.txt", b"payload")
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "data.txt")
    assert_refused_cleanly(archive, target, snapshot(sandbox, {archive}), sandbox)
    ar.safe_extract(archive, target, allow_links=True)
    assert (target / "link").is_symlink() and (target / "link").read_bytes() == b"payload"


def test_allowed_internal_links_are_extracted(sandbox):
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "ok.tar", [
        Member("dir", "d"), Member("file", "d/x.txt", b"1"), Member("sym", "d/l", link="x.txt"),
        Member("sym", "top", link="d"), Member("hard", "h", link="d/x.txt")])
    paths = ar.safe_extract(archive, target, allow_links=True)
    assert (target / "d/l").read_bytes() == b"1" and (target / "h").read_bytes() == b"1"
    assert (target / "top").is_symlink() and os.path.realpath(target / "top") == str(target / "d")
    assert [p.relative_to(target).as_posix() for p in paths] == ["d", "d/x.txt", "d/l", "top", "h"]
    assert sorted(p.name for p in (sandbox / "work").iterdir()) == ["ok.tar", "target"]


def test_members_are_never_written_through_an_internal_link(sandbox):
    # "top -> d" is harmless, but writing "top/y" would follow it; extraction never follows links
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "via.tar", [
        Member("dir", "d"), Member("sym", "top", link="d"), Member("file", "top/y", b"2")])
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {sandbox / "work" / "via.tar"}),
                                 sandbox, allow_links=True)
    assert "'top/y'" in str(err) and "link" in str(err)


def test_duplicate_file_member_replaces_the_earlier_one(sandbox):
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "dup.tar", [
        Member("file", "a.txt", b"old"), Member("file", "a.txt", b"new")])
    ar.safe_extract(archive, target)
    assert (target / "a.txt").read_bytes() == b"new"


def test_extraction_into_an_existing_folder_refuses_to_overwrite(sandbox):
    target = sandbox / "work" / "target"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    archive = write_tar(sandbox / "work" / "a.tar", [Member("file", "new.txt", b"n")])
    ar.safe_extract(archive, target)
    assert (target / "new.txt").read_bytes() == b"n" and (target / "mine.txt").read_text() == "keep me"
    archive2 = write_tar(sandbox / "work" / "b.tar", [Member("file", "other.txt", b"o"),
                                                    Member("file", "mine.txt", b"evil")])
    with pytest.raises(ar.ArchiveError, match="mine.txt"):
        ar.safe_extract(archive2, target)
    assert (target / "mine.txt").read_text() == "keep me" and not (target / "other.txt").exists()
    assert sorted(p.name for p in (sandbox / "work").iterdir()) == ["a.tar", "b.tar", "target"]


# --- size caps ------------------------------------------------------------------------------

def test_zip_bomb_is_refused_by_ratio(sandbox):
    target = sandbox / "work" / "target"
    archive = sandbox / "work" / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(40 << 20))  # 40 MiB of zeros, ~40 KB compressed
    assert archive.stat().st_size < 100_000
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {archive}), sandbox)
    assert isinstance(err, ar.ArchiveTooLargeError) and "max_ratio" in str(err)


def test_tar_gz_bomb_is_refused_while_streaming(sandbox):
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "bomb.tar.gz", [Member("file", "zeros", bytes(40 << 20))],
                        mode="w:gz")
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {archive}), sandbox)
    assert isinstance(err, ar.ArchiveTooLargeError)


def test_total_size_cap_and_member_cap_are_keyword_overrides(sandbox):
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "big.tar", [Member("file", f"f{i}", os.urandom(4000))
                                                      for i in range(3)])
    with pytest.raises(ar.ArchiveTooLargeError, match="max_bytes"):
        ar.safe_extract(archive, target, max_bytes=8000)
    with pytest.raises(ar.ArchiveTooLargeError, match="max_members"):
        ar.safe_extract(archive, target, max_members=2)
    assert not target.exists()
    assert len(ar.safe_extract(archive, target, max_bytes=100_000, max_members=3)) == 3


def test_tar_headers_count_against_the_cap_not_just_member_sizes(sandbox):
    # a 3 MiB GNU long name: the member itself is empty, so a check of the declared member
    # sizes sees nothing, but tarfile would read the whole name into memory
    target = sandbox / "work" / "target"
    archive = write_tar(sandbox / "work" / "longname.tar.gz", [Member("file", "n" * (3 << 20))],
                        mode="w:gz")
    with pytest.raises(ar.ArchiveTooLargeError):
        ar.safe_extract(archive, target, max_bytes=1 << 20)
    assert sorted(p.name for p in (sandbox / "work").iterdir()) == ["longname.tar.gz"]


# --- property: random member sequences ------------------------------------------------------

PLAIN = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map("/".join)
ODD = st.lists(st.sampled_from(["a", "b", "..", ".", ""]), min_size=1, max_size=4).map("/".join)
NAMES = st.one_of(PLAIN, PLAIN, PLAIN, PLAIN, ODD)  # mostly plausible names: links get extracted too
LINKS = st.one_of(PLAIN, ODD, ODD.map(lambda n: "/" + n), st.sampled_from(["OUTSIDE", "OUTSIDE/secret"]))
MEMBERS = st.lists(
    st.one_of(
        st.builds(Member, st.just("file"), NAMES, st.binary(max_size=8)),
        st.builds(Member, st.just("dir"), NAMES),
        st.builds(Member, st.just("sym"), NAMES, st.just(b""), LINKS),
        st.builds(Member, st.just("hard"), NAMES, st.just(b""), LINKS),
    ),
    min_size=1, max_size=8,
)


# Links that climb with "..", point at "." or at each other: the chains that fooled the
# string-based check. Names stay plain so that many of these archives are extracted for real.
CHAINS = st.lists(st.sampled_from(["a", "b", "..", "."]), min_size=1, max_size=4).map("/".join)
LINK_HEAVY = st.lists(
    st.one_of(
        st.builds(Member, st.just("file"), PLAIN, st.binary(max_size=4)),
        st.builds(Member, st.just("dir"), PLAIN),
        st.builds(Member, st.just("sym"), PLAIN, st.just(b""), CHAINS),
        st.builds(Member, st.just("hard"), PLAIN, st.just(b""), PLAIN),
        st.builds(Member, st.just("file"), PLAIN.map(lambda n: n + "/x"), st.just(b"through")),
    ),
    min_size=1, max_size=8,
)


def check_extraction_stays_inside(members: list[Member], allow_links: bool, target_exists: bool,
                                  use_zip: bool) -> str:
    """Extract ``members`` in a fresh sandbox; assert nothing outside the target changed, and
    that a refusal left nothing behind. Returns "ok" or "refused"."""
    base = Path(tempfile.mkdtemp())
    try:
        (base / "outside").mkdir()
        (base / "outside" / "secret").write_text("secret")
        work = base / "work"
        work.mkdir()
        target = work / "target"
        if target_exists:
            target.mkdir()
        outside = str(base / "outside")
        members = [Member(m.kind, m.name, m.data, m.link.replace("OUTSIDE", outside)) for m in members]
        archive = base / "archive"
        if use_zip:
            # zip has no hardlinks, and zipfile cannot write a file with an empty name
            members = [m for m in members if m.kind != "hard" and (m.name or m.kind == "dir")]
            with zipfile.ZipFile(archive, "w") as zf:
                for m in members:
                    info = zipfile.ZipInfo(m.name + ("/" if m.kind == "dir" else ""))
                    if m.kind == "sym":
                        info.external_attr = 0o120777 << 16
                    zf.writestr(info, m.link.encode() if m.kind == "sym" else m.data)
        else:
            write_tar(archive, members)
        before = snapshot(base, {archive, target})
        try:
            ar.safe_extract(archive, target, allow_links=allow_links)
            outcome = "ok"
        except DataFileError:
            outcome = "refused"
            assert target.exists() == target_exists
            if target_exists:
                assert list(target.iterdir()) == []
        else:
            real_target = os.path.realpath(target)
            for dirpath, dirnames, filenames in os.walk(target):
                for name in dirnames + filenames:
                    real = os.path.realpath(Path(dirpath) / name)
                    assert os.path.commonpath([real, real_target]) == real_target, name
        assert snapshot(base, {archive, target}) == before
        assert sorted(p.name for p in work.iterdir()) == (["target"] if target.exists() else [])
        return outcome
    finally:
        shutil.rmtree(base)


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # zipfile, on repeated names
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=MEMBERS, allow_links=st.booleans(), target_exists=st.booleans(),
       use_zip=st.booleans())
def test_random_archives_never_touch_anything_outside(members, allow_links, target_exists, use_zip):
    check_extraction_stays_inside(members, allow_links, target_exists, use_zip)


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=LINK_HEAVY, target_exists=st.booleans(), use_zip=st.booleans())
def test_random_link_chains_never_reach_outside(members, target_exists, use_zip):
    outcome = check_extraction_stays_inside(members, True, target_exists, use_zip)
    event(outcome + (" with links" if any(m.kind in ("sym", "hard") for m in members) else ""))


def test_zip_device_member_target_file_and_missing_archive(sandbox):
    target = sandbox / "work" / "target"
    archive = sandbox / "work" / "dev.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("tty")
        info.external_attr = (stat.S_IFCHR | 0o666) << 16
        zf.writestr(info, b"")
    err = assert_refused_cleanly(archive, target, snapshot(sandbox, {archive}), sandbox)
    assert isinstance(err, ar.UnsafeArchiveError) and "special" in str(err)
    fine = sandbox / "work" / "fine.zip"
    with zipfile.ZipFile(fine, "w") as zf:
        zf.writestr("a.txt", b"a")
    target.write_text("a file is in the way")
    with pytest.raises(ar.ArchiveError, match="exists and is not a folder"):
        ar.safe_extract(fine, target)
    assert target.read_text() == "a file is in the way"
    with pytest.raises(ar.ArchiveError, match="does not exist"):
        ar.safe_extract(sandbox / "work" / "nothing.zip", sandbox / "work" / "t2")
