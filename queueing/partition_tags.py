"""Hash tags of the queue partitions, chosen so that partitions spread evenly over slots.

Partition ``i`` uses ``TAGS[i]``, whose hash slot is ``bit_reverse_8(i) * 64``: partitions
``0..P-1`` for P a power of two sit at evenly spaced slots (0, 8192, 4096, 12288, ...), so a
cluster whose primaries own contiguous, equal slot ranges gets an equal share of them. The
table was found once by searching short strings for each target slot; a test checks it.
"""

from __future__ import annotations

# fmt: off
TAGS: tuple[str, ...] = (
    "1bz", "fjl", "17p", "356", "5nw", "7l1", "h85", "b3k", "dlj", "ng4", "130", "31v",
    "5j7", "7hq", "qsu", "7ys", "04s", "265", "0ay", "gio", "pt6", "c0h", "4mt", "6o2",
    "003", "22u", "0e9", "5f", "4x6", "6zp", "4i4", "6kr", "nbd", "1cj", "n7n", "1rh",
    "bgq", "5og", "bvs", "092l", "3el", "9n2", "30f", "d8p", "7ia", "hho", "7xc", "hym",
    "o4m", "05c", "06", "8iq", "c1x", "49n", "cdr", "4ld", "23e", "m2k", "4v", "8m1", "c58",
    "asv", "6jb", "abt", "53t", "712", "he6", "7d8", "96a", "3y7", "1js", "3h5", "574",
    "75r", "hav", "jc0", "d1i", "wu7", "1n3", "3lu", "if5", "cmk", "40w", "621", "0ip",
    "2k6", "0xr", "2z4", "akm", "02bb", "447", "66q", "0m0", "yg", "e2j", "he", "j3j",
    "52d", "box", "5gn", "frw", "1za", "fcu", "1kc", "74b", "h5l", "7ah", "qkn", "38o",
    "931", "3me", "des", "kec", "4dm", "c9q", "41g", "oin", "8ax", "m5", "0yb", "6bk",
    "ice", "67a", "i6o", "xw", "8e8", "iu", "802", "5n3", "7lu", "h8q", "su7", "dhn", "nc0",
    "174", "35r", "5js", "7h5", "hx9", "7y7", "9of", "3d8", "13t", "312", "a2j", "k94",
    "4m0", "6ov", "047", "dh", "ekm", "1b", "4xr", "6z4", "4ip", "6k6", "00w", "221", "8le",
    "gmk", "7me", "hlk", "78o", "h9a", "3ah", "9j6", "34b", "l5l", "bcu", "5kc", "brw",
    "5za", "fox", "1gn", "n3j", "12d", "cu4", "a3z", "6nf", "afp", "ex", "8x7", "0r", "8i5",
    "cqt", "4yb", "kin", "ab0", "a8", "01g", "42", "0dm", "d5m", "3ys", "1j7", "3hq", "530",
    "71v", "her", "jg4", "92e", "f3k", "1nw", "3l1", "57p", "756", "5bz", "bjl", "0i4",
    "9k", "0x6", "la", "4e9", "kd7", "403", "62u", "0mt", "2o2", "81f", "g0h", "4ay", "cio",
    "44s", "665", "3xc", "975", "3ia", "daw", "70f", "h1h", "7el", "hdb", "fvs", "93u",
    "fgq", "1og", "j7n", "5rh", "jbd", "5cj", "2jb", "ebt", "mq", "846", "6fo", "any",
    "63e", "i2k", "x3", "0ld", "i1", "09n", "kag", "aj9", "k4m", "45c",
)
# fmt: on
