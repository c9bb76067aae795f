//! Finds where a value sits in JSON text, so that errors found after parsing can name a line.
//!
//! serde_json reports positions only for syntax and type errors; checks made on the parsed
//! scenario (an unknown process, an impossible expectation) use this to point at the value.

use crate::scenario::Seg;

/// Returns the 1-based line and column of the value at `path`, or of the deepest part of the path
/// that exists. `None` when the text is not valid JSON.
pub(crate) fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let mut p = Parser {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let offset = p.find(path)?;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some((line, column))
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Walks to the value at `path` and returns its offset (or the deepest found).
    fn find(&mut self, path: &[Seg]) -> Option<usize> {
        self.ws();
        let start = self.pos;
        let Some((seg, rest)) = path.split_first() else {
            return Some(start);
        };
        match (self.peek()?, seg) {
            (b'{', Seg::Key(want)) => {
                self.pos += 1;
                loop {
                    self.ws();
                    if self.peek()? == b'}' {
                        return Some(start);
                    }
                    let key = self.string()?;
                    self.ws();
                    if self.peek()? != b':' {
                        return None;
                    }
                    self.pos += 1;
                    if key == *want {
                        return self.find(rest);
                    }
                    self.ws();
                    self.skip()?;
                    self.ws();
                    if self.peek()? == b',' {
                        self.pos += 1;
                    }
                }
            }
            (b'[', Seg::Index(want)) => {
                self.pos += 1;
                let mut i = 0;
                loop {
                    self.ws();
                    if self.peek()? == b']' {
                        return Some(start);
                    }
                    if i == *want {
                        return self.find(rest);
                    }
                    self.skip()?;
                    self.ws();
                    if self.peek()? == b',' {
                        self.pos += 1;
                    }
                    i += 1;
                }
            }
            _ => Some(start),
        }
    }

    /// Reads a string token and returns its raw contents (escapes are left as they are).
    fn string(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek()? {
                b'\\' => self.pos += 2,
                b'"' => {
                    let s = std::str::from_utf8(&self.bytes[start..self.pos]).ok()?;
                    self.pos += 1;
                    return Some(s.to_owned());
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Skips one value of any kind.
    fn skip(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                loop {
                    self.ws();
                    match self.peek()? {
                        c if c == close => {
                            self.pos += 1;
                            return Some(());
                        }
                        b',' | b':' => self.pos += 1,
                        _ => self.skip()?,
                    }
                }
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values() {
        let text = "{\n  \"a\": [1, {\"b\": \"x\"}],\n  \"c\": {\"d\": [true, \"é\", 3]}\n}";
        assert_eq!(locate(text, &[]), Some((1, 1)));
        assert_eq!(locate(text, &[Seg::Key("a".into())]), Some((2, 8)));
        assert_eq!(
            locate(
                text,
                &[Seg::Key("a".into()), Seg::Index(1), Seg::Key("b".into())]
            ),
            Some((2, 18))
        );
        assert_eq!(
            locate(
                text,
                &[Seg::Key("c".into()), Seg::Key("d".into()), Seg::Index(2)]
            ),
            Some((3, 26))
        );
        // A path that goes too deep stops at the deepest value that exists.
        assert_eq!(
            locate(text, &[Seg::Key("c".into()), Seg::Key("zz".into())]),
            Some((3, 8))
        );
    }
}
