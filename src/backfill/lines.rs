//! An export file as lines: gunzipped as it is read (or read as it is: plain JSON Lines),
//! each line held to [`MAX_LINE_BYTES`], never the whole file in memory. A PGP-encrypted
//! file is recognised and refused. What was read from the source is counted (progress), and
//! a failure of the source (a network error) is told apart from a corrupt or cut-short gzip
//! stream: the first is worth a rerun, the second is not.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The longest line read; a longer one is rejected (`line_too_long`) and skipped to its end.
/// Real export lines are a few KB.
pub const MAX_LINE_BYTES: usize = 4 << 20;
/// Buffer between the source and the gzip decoder, and after it.
const BUFFER_BYTES: usize = 256 << 10;

/// What a file holds, from its first bytes (and its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gzip,
    Plain,
    /// OpenPGP (`.gpg`, `.pgp`, or PGP packets): not supported.
    Encrypted,
}

/// Tells a file's kind from its name and first bytes.
pub fn sniff(name: &str, head: &[u8]) -> Kind {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".gpg") || lower.ends_with(".pgp") || head.starts_with(b"-----BEGIN PGP") {
        return Kind::Encrypted;
    }
    match head {
        [0x1f, 0x8b, ..] => Kind::Gzip,
        // An OpenPGP packet header of tag 1-3 (a public-key or symmetric-key encrypted
        // session key, or a signature), old format (0x84-0x8f) or new (0xc1-0xc3). Any other
        // first byte is read as text: what is not JSON is then reported line by line.
        [0x84..=0x8f | 0xc1..=0xc3, ..] => Kind::Encrypted,
        _ => Kind::Plain,
    }
}

/// The source, counted: bytes read so far (shared with the progress display), and whether a
/// read failed (the source's fault, not the file's).
pub struct Counted<R> {
    inner: R,
    pub read: Arc<AtomicU64>,
    pub failed: Arc<AtomicBool>,
}

impl<R: Read> Counted<R> {
    pub fn new(inner: R, read: Arc<AtomicU64>) -> Self {
        Counted {
            inner,
            read,
            failed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.read.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// A line, or the news that it was longer than [`MAX_LINE_BYTES`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Text(&'a [u8]),
    TooLong,
}

/// Why reading a file stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The gzip stream is corrupt or cut short: the file will never read further.
    #[error("corrupt or truncated gzip: {0}")]
    Corrupt(io::Error),
    /// The source failed (a network error, a file that went away): a rerun may read it.
    #[error("reading the file failed: {0}")]
    Source(io::Error),
}

/// The lines of a file, numbered from 1.
pub struct Lines {
    inner: Box<dyn BufRead + Send>,
    source_failed: Arc<AtomicBool>,
    buf: Vec<u8>,
    /// The number of the line last returned.
    pub number: u64,
}

impl Lines {
    /// Reads `source` (of kind `kind`, not [`Kind::Encrypted`]); `head` holds the bytes
    /// already taken from it to tell its kind.
    pub fn new<R: Read + Send + 'static>(kind: Kind, head: Vec<u8>, source: Counted<R>) -> Self {
        let source_failed = source.failed.clone();
        let whole = BufReader::with_capacity(BUFFER_BYTES, io::Cursor::new(head).chain(source));
        let inner: Box<dyn BufRead + Send> = match kind {
            Kind::Gzip => Box::new(BufReader::with_capacity(
                BUFFER_BYTES,
                flate2::bufread::MultiGzDecoder::new(whole),
            )),
            Kind::Plain | Kind::Encrypted => Box::new(whole),
        };
        Lines {
            inner,
            source_failed,
            buf: Vec::new(),
            number: 0,
        }
    }

    /// The next line (without its `\n` or `\r\n`) and its number, `None` at the end of the
    /// file.
    pub fn next_line(&mut self) -> Result<Option<(u64, Line<'_>)>, ReadError> {
        self.buf.clear();
        let mut too_long = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(e)),
            };
            if available.is_empty() {
                if self.buf.is_empty() && !too_long {
                    return Ok(None);
                }
                break;
            }
            let (take, end) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if !too_long && self.buf.len() + take <= MAX_LINE_BYTES {
                self.buf.extend_from_slice(&available[..take]);
            } else {
                too_long = true;
                self.buf.clear();
            }
            self.inner.consume(take + usize::from(end));
            if end {
                break;
            }
        }
        self.number += 1;
        if too_long {
            return Ok(Some((self.number, Line::TooLong)));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some((self.number, Line::Text(&self.buf))))
    }

    fn error(&self, e: io::Error) -> ReadError {
        if self.source_failed.load(Ordering::Relaxed) {
            ReadError::Source(e)
        } else {
            ReadError::Corrupt(e)
        }
    }
}

/// Reads up to `n` bytes from the start of `source` (fewer at its end).
pub fn head<R: Read>(source: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    source.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn lines_of(kind: Kind, bytes: Vec<u8>) -> (Vec<String>, Option<String>) {
        let mut src = io::Cursor::new(bytes);
        let head = head(&mut src, 4).unwrap();
        let mut lines = Lines::new(kind, head, Counted::new(src, Arc::default()));
        let mut out = Vec::new();
        loop {
            match lines.next_line() {
                Ok(Some((n, Line::Text(t)))) => {
                    assert_eq!(n as usize, out.len() + 1);
                    out.push(String::from_utf8_lossy(t).into_owned())
                }
                Ok(Some((_, Line::TooLong))) => out.push("<too long>".into()),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    #[test]
    fn lines_of_gzip_and_plain_files() {
        let text = b"{\"a\":1}\r\n{\"b\":2}\n\n{\"c\":3}";
        let want = ["{\"a\":1}", "{\"b\":2}", "", "{\"c\":3}"];
        assert_eq!(
            lines_of(Kind::Gzip, gzip(text)),
            (want.map(String::from).to_vec(), None)
        );
        assert_eq!(
            lines_of(Kind::Plain, text.to_vec()),
            (want.map(String::from).to_vec(), None)
        );
        // Concatenated gzip members (as `cat a.gz b.gz`) read as one stream.
        let two = [gzip(b"1\n2\n"), gzip(b"3\n")].concat();
        assert_eq!(lines_of(Kind::Gzip, two).0, ["1", "2", "3"]);
    }

    #[test]
    fn a_line_over_the_limit_is_skipped_and_the_next_one_read() {
        let mut text = vec![b'x'; MAX_LINE_BYTES + 10];
        text.extend_from_slice(b"\nnext\n");
        let (lines, err) = lines_of(Kind::Gzip, gzip(&text));
        assert_eq!(
            (lines, err),
            (vec!["<too long>".to_owned(), "next".to_owned()], None)
        );
    }

    #[test]
    fn a_truncated_or_corrupt_gzip_is_an_error_after_the_lines_before_it() {
        let mut many = Vec::new();
        for i in 0..20_000 {
            writeln!(many, "{{\"line\":{i}}}").unwrap();
        }
        let whole = gzip(&many);
        let cut = whole[..whole.len() / 2].to_vec();
        let (lines, err) = lines_of(Kind::Gzip, cut);
        assert!(!lines.is_empty() && lines.len() < 20_000, "{}", lines.len());
        assert!(err.unwrap().starts_with("corrupt or truncated gzip"));
        let mut bad = whole.clone();
        for b in &mut bad[40..80] {
            *b ^= 0x5a;
        }
        let (_, err) = lines_of(Kind::Gzip, bad);
        assert!(err.unwrap().starts_with("corrupt or truncated gzip"));
    }

    #[test]
    fn a_failing_source_is_not_a_corrupt_file() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(b'{');
                self.0 -= n;
                Ok(n)
            }
        }
        let mut lines = Lines::new(
            Kind::Plain,
            Vec::new(),
            Counted::new(Broken(10), Arc::default()),
        );
        assert!(matches!(lines.next_line(), Err(ReadError::Source(_))));
    }

    #[test]
    fn kinds_are_told_by_name_and_first_bytes() {
        assert_eq!(sniff("a.json.gz", &[0x1f, 0x8b, 8, 0]), Kind::Gzip);
        assert_eq!(sniff("a.json", b"{\"a\""), Kind::Plain);
        assert_eq!(sniff("a.jsonl", b"\xef\xbb\xbf{"), Kind::Plain);
        assert_eq!(sniff("a.json.gz.gpg", &[0x1f, 0x8b]), Kind::Encrypted);
        assert_eq!(sniff("a.json.gz", &[0x85, 0x01, 0x0c]), Kind::Encrypted);
        assert_eq!(sniff("a.json.gz", &[0xc1, 0x4c]), Kind::Encrypted);
        // Other high first bytes are text (a UTF-16 BOM, a stray character): reported by line.
        assert_eq!(sniff("a.json", &[0xff, 0xfe, b'{', 0]), Kind::Plain);
        assert_eq!(sniff("a.json", "中{".as_bytes()), Kind::Plain);
        assert_eq!(
            sniff("a.asc", b"-----BEGIN PGP MESSAGE-----"),
            Kind::Encrypted
        );
        assert_eq!(sniff("empty.json", b""), Kind::Plain);
    }
}
