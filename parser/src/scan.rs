//! What the CSV reader does not say: physical line numbers and quoting trouble.
//!
//! [`Scanner`] wraps the text the CSV reader consumes and watches every byte as it
//! passes, so it costs no second read:
//!
//! - line breaks as a text editor counts them (LF, CRLF and a lone CR each end one line),
//!   so any byte offset the reader reports maps to the line an editor shows, whatever
//!   the line ends ([`Lines::line_at`]);
//! - the quoting state, by the csv crate's own rules (a quote opens a field only at its
//!   start; `""` inside quotes is a quote; a closing quote may be followed by more text),
//!   so a quoted value that runs over too many lines, or a file that ends inside quotes,
//!   is caught with the line where its record began, instead of silently swallowing the
//!   rows after it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read;
use std::rc::Rc;

/// What the scanner found wrong with the quoting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteTrouble {
    /// A quoted value opened on `quote_line` was still open after `limit` more lines.
    TooManyLines {
        /// The line where the record began.
        record_line: u64,
        /// The line where the quote opened.
        quote_line: u64,
        /// The limit it went past.
        limit: u64,
    },
    /// A quoted value opened on `quote_line` ran over lines and closed on `close_line`
    /// with more text right after its closing quote: the quote that closed it belongs to
    /// another value, and the lines between were swallowed.
    TextAfterQuote {
        /// The line where the record began.
        record_line: u64,
        /// The line where the quote opened.
        quote_line: u64,
        /// The line where it closed.
        close_line: u64,
    },
    /// The file ended inside a quoted value opened on `quote_line`.
    EndsInsideQuotes {
        /// The line where the record began.
        record_line: u64,
        /// The line where the quote opened.
        quote_line: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// At the start of a field.
    FieldStart,
    /// In a field that did not start with a quote.
    Unquoted,
    /// Inside quotes.
    Quoted,
    /// Just after a quote inside quotes: a closing quote, or the first of `""`.
    QuoteInQuoted,
}

/// Line breaks seen so far and not yet asked about.
#[derive(Debug)]
pub struct Lines {
    /// Offsets of the first byte after each line break, ascending.
    breaks: VecDeque<u64>,
    /// The line of the byte just after the last break popped (1: the first line).
    line: u64,
}

impl Lines {
    /// The physical line (from 1) of the byte at `offset`. Offsets asked about must not
    /// decrease (the reader reports records in order).
    pub fn line_at(&mut self, offset: u64) -> u64 {
        while self.breaks.front().is_some_and(|b| *b <= offset) {
            self.breaks.pop_front();
            self.line += 1;
        }
        self.line
    }
}

#[derive(Debug)]
struct State {
    delimiter: u8,
    exhausted: bool,
    max_lines: u64,
    offset: u64,
    /// Current physical line.
    line: u64,
    prev_cr: bool,
    quoting: Quoting,
    quote_line: u64,
    record_line: u64,
    lines: Lines,
    trouble: Option<QuoteTrouble>,
    /// Whether the last byte seen was a line break (or nothing was seen).
    ended_with_break: bool,
}

impl State {
    fn line_break(&mut self) {
        self.line += 1;
        self.lines.breaks.push_back(self.offset + 1);
    }

    fn eat(&mut self, b: u8) {
        let is_break = match b {
            b'\r' => true,
            b'\n' => !self.prev_cr,
            _ => false,
        };
        self.prev_cr = b == b'\r';
        if is_break {
            self.line_break();
        }
        let ends_line = b == b'\r' || b == b'\n';
        self.quoting = match (self.quoting, b) {
            (Quoting::Quoted, b'"') => Quoting::QuoteInQuoted,
            (Quoting::Quoted, _) => {
                if is_break && self.line - self.quote_line > self.max_lines {
                    self.trouble.get_or_insert(QuoteTrouble::TooManyLines {
                        record_line: self.record_line,
                        quote_line: self.quote_line,
                        limit: self.max_lines,
                    });
                }
                Quoting::Quoted
            }
            (Quoting::QuoteInQuoted, b'"') => Quoting::Quoted,
            (Quoting::FieldStart, b'"') => {
                self.quote_line = self.line;
                Quoting::Quoted
            }
            (_, b) if b == self.delimiter => Quoting::FieldStart,
            (Quoting::QuoteInQuoted, _) if !ends_line && self.line > self.quote_line => {
                self.trouble.get_or_insert(QuoteTrouble::TextAfterQuote {
                    record_line: self.record_line,
                    quote_line: self.quote_line,
                    close_line: self.line,
                });
                Quoting::Unquoted
            }
            (_, _) if ends_line => {
                // A record ends; the next one begins on the line after the break (a CRLF
                // pair, or blank lines, do not move it past a line yet unseen).
                self.record_line = self.line;
                Quoting::FieldStart
            }
            (Quoting::FieldStart | Quoting::Unquoted | Quoting::QuoteInQuoted, _) => {
                Quoting::Unquoted
            }
        };
        self.offset += 1;
        self.ended_with_break = ends_line;
    }

    /// Watches every byte of `bytes`, as [`Self::eat`] would one by one, but jumps over
    /// runs of bytes that change nothing but the offset: inside an unquoted field every
    /// byte but the delimiter and line breaks; inside quotes every byte but a quote and
    /// line breaks. Most of a file is such runs.
    fn eat_all(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some((&first, _)) = rest.split_first() {
            let run = match self.quoting {
                Quoting::Unquoted => memchr::memchr3(self.delimiter, b'\r', b'\n', rest),
                Quoting::Quoted => memchr::memchr3(b'"', b'\r', b'\n', rest),
                Quoting::FieldStart | Quoting::QuoteInQuoted => Some(0),
            }
            .unwrap_or(rest.len());
            if run == 0 {
                self.eat(first);
                rest = &rest[1..];
            } else {
                self.offset += run as u64;
                self.prev_cr = false;
                self.ended_with_break = false;
                rest = &rest[run..];
            }
        }
    }
}

/// A reader that watches the bytes passing through it (see the module's docs).
pub struct Scanner<R> {
    inner: R,
    state: Rc<RefCell<State>>,
}

/// The scanner's findings, shared with the code reading its output.
#[derive(Debug, Clone)]
pub struct Watch {
    state: Rc<RefCell<State>>,
}

impl<R: Read> Scanner<R> {
    /// Watches `inner`, delimited by `delimiter`; a quoted value may span `max_lines`
    /// lines at most.
    pub fn new(inner: R, delimiter: u8, max_lines: u64) -> (Scanner<R>, Watch) {
        let state = Rc::new(RefCell::new(State {
            delimiter,
            exhausted: false,
            max_lines,
            offset: 0,
            line: 1,
            prev_cr: false,
            quoting: Quoting::FieldStart,
            quote_line: 1,
            record_line: 1,
            lines: Lines {
                breaks: VecDeque::new(),
                line: 1,
            },
            trouble: None,
            ended_with_break: true,
        }));
        (
            Scanner {
                inner,
                state: state.clone(),
            },
            Watch { state },
        )
    }
}

impl<R: Read> Read for Scanner<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut state = self.state.borrow_mut();
        state.eat_all(&buf[..n]);
        if n == 0 && !buf.is_empty() {
            state.exhausted = true;
        }
        Ok(n)
    }
}

impl Watch {
    /// The physical line of the byte at `offset` (see [`Lines::line_at`]).
    pub fn line_at(&self, offset: u64) -> u64 {
        self.state.borrow_mut().lines.line_at(offset)
    }

    /// Quoting trouble found so far.
    pub fn trouble(&self) -> Option<QuoteTrouble> {
        self.state.borrow().trouble
    }

    /// Quoting trouble of the whole text, once it has all been read: what [`Self::trouble`]
    /// found, or a file that ends inside quotes.
    pub fn trouble_at_end(&self) -> Option<QuoteTrouble> {
        let state = self.state.borrow();
        state.trouble.or_else(|| {
            (state.quoting == Quoting::Quoted).then_some(QuoteTrouble::EndsInsideQuotes {
                record_line: state.record_line,
                quote_line: state.quote_line,
            })
        })
    }

    /// Whether the text ended with a line break (or was empty), once all read.
    pub fn ended_with_break(&self) -> bool {
        self.state.borrow().ended_with_break
    }

    /// Whether `offset` is the end of the text (and the text has all been read).
    pub fn is_end(&self, offset: u64) -> bool {
        let state = self.state.borrow();
        state.exhausted && offset >= state.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &[u8], max_lines: u64) -> Watch {
        let (mut scanner, watch) = Scanner::new(text, b',', max_lines);
        std::io::copy(&mut scanner, &mut std::io::sink()).unwrap();
        watch
    }

    /// The state after eating `text` byte by byte, and after eating it in runs, split in
    /// chunks of `chunk` bytes (as reads deliver it).
    fn both_ways(text: &[u8], chunk: usize) -> (String, String) {
        let (_, one) = Scanner::new(&b""[..], b';', 3);
        let (_, runs) = Scanner::new(&b""[..], b';', 3);
        for &b in text {
            one.state.borrow_mut().eat(b);
        }
        for piece in text.chunks(chunk) {
            runs.state.borrow_mut().eat_all(piece);
        }
        let show = |w: &Watch| format!("{:?}", w.state.borrow());
        (show(&one), show(&runs))
    }

    #[test]
    fn jumping_over_runs_sees_what_byte_by_byte_sees() {
        let texts: [&[u8]; 6] = [
            b"id;name;city\r\n1;\"Ann \"\"A\"\"\";Paris\r\n2;Bob;\"Rome\nTorino\"\n",
            b"a;\"b\nc\nd\ne\nf\";g\n",
            b"a;\"open\nx;y\nz;\"w\"tail\n",
            b"h\r\r\n\n\"q\"x;\"\"\"\";;\r",
            b"no break at the end;\"cut",
            b"5'10\";x\"y;\"\"\n",
        ];
        for text in texts {
            for chunk in [1, 2, 3, 7, 64] {
                let (one, runs) = both_ways(text, chunk);
                assert_eq!(
                    one,
                    runs,
                    "{:?} in chunks of {chunk}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    #[test]
    fn lines_are_counted_as_editors_count_them() {
        for text in [&b"a\nb\nc\n"[..], b"a\r\nb\r\nc\r\n", b"a\rb\rc\r"] {
            let w = scan(text, 10);
            let step = if text.contains(&b'\n') && text.contains(&b'\r') {
                3
            } else {
                2
            };
            assert_eq!(w.line_at(0), 1, "{text:?}");
            assert_eq!(w.line_at(step), 2, "{text:?}");
            assert_eq!(w.line_at(2 * step), 3, "{text:?}");
            assert!(w.ended_with_break());
        }
        let w = scan(b"a\n\n\nb", 10);
        assert_eq!(w.line_at(4), 4, "blank lines count");
        assert!(!w.ended_with_break());
    }

    #[test]
    fn quoting_follows_the_csv_rules() {
        // Closed quotes, doubled quotes, quotes inside unquoted text, multi-line values.
        let ok = b"a,\"b, \"\"c\"\"\",5'10\",\"x\ny\"\n\"z\"tail,e\n";
        assert_eq!(scan(ok, 10).trouble_at_end(), None);
        // An unclosed quote in the last column, three rows before the end.
        let cut = b"h1,h2\na,b\nc,\"Boston\nd,e\nf,g\n";
        assert_eq!(
            scan(cut, 10).trouble_at_end(),
            Some(QuoteTrouble::EndsInsideQuotes {
                record_line: 3,
                quote_line: 3
            })
        );
        // The same with a limit of two lines: caught as soon as it passes it.
        let w = scan(cut, 2);
        assert_eq!(
            w.trouble(),
            Some(QuoteTrouble::TooManyLines {
                record_line: 3,
                quote_line: 3,
                limit: 2
            })
        );
        // A quote that closes lines later with more text after it swallowed those lines.
        let swallowed = b"h1,h2\na,\"Boston\nb,c\nd,\"Rome\"\n";
        assert_eq!(
            scan(swallowed, 10).trouble_at_end(),
            Some(QuoteTrouble::TextAfterQuote {
                record_line: 2,
                quote_line: 2,
                close_line: 4
            })
        );
        // On one line, that is only untidy (`"Bob" Smith`): read as the csv crate reads it.
        assert_eq!(scan(b"h\n\"Bob\" Smith\n", 10).trouble_at_end(), None);
        // CRLF files: the same lines.
        let crlf = b"h1,h2\r\na,b\r\nc,\"Boston\r\nd,e\r\n";
        assert_eq!(
            scan(crlf, 10).trouble_at_end(),
            Some(QuoteTrouble::EndsInsideQuotes {
                record_line: 3,
                quote_line: 3
            })
        );
    }
}
