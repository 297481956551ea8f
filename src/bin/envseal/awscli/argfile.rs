//! `@file` arguments as aws-encryption-cli 4.3 reads them (Python's
//! argparse `fromfile_prefix_chars="@"` with the CLI's own line splitter):
//! any argument starting with `@` is replaced by the arguments in the file
//! it names, recursively. Each line is split as Python's `shlex` splits it
//! in POSIX mode with `whitespace_split` (quotes, backslash escapes inside
//! both kinds of quotes, `#` outside quotes starting a comment even in the
//! middle of a word), then each word gets `~` and `$VAR` expansion.
//! No crate splits with Python's rules (the shlex crate keeps `a#b` whole),
//! hence this small tokenizer.

use std::ffi::OsString;
use std::path::Path;

/// Why an argument file could not be read: a usage error (exit 2, as
/// argparse reports a missing file) or a line that does not split (exit 1,
/// as the peer's uncaught `ValueError`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ArgfileError {
    Unreadable(String),
    Unsplittable(String),
}

/// How deep argument files may include one another (a file naming itself
/// would otherwise never end); any number may be included side by side.
const MAX_DEPTH: usize = 64;

/// `args` with every `@file` replaced by the arguments it holds.
pub(crate) fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, ArgfileError> {
    expand_inner(args, 0)
}

fn expand_inner(args: Vec<OsString>, depth: usize) -> Result<Vec<OsString>, ArgfileError> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let Some(name) = arg.to_str().and_then(|s| s.strip_prefix('@')) else {
            out.push(arg);
            continue;
        };
        if depth >= MAX_DEPTH {
            return Err(ArgfileError::Unreadable(format!(
                "argument files nested more than {MAX_DEPTH} deep (does @{name} include itself?)"
            )));
        }
        let text = std::fs::read_to_string(Path::new(name))
            .map_err(|e| ArgfileError::Unreadable(format!("{e}: '{name}'")))?;
        let mut words = Vec::new();
        for line in split_lines(&text) {
            for word in split_line(line)? {
                words.push(OsString::from(expand_word(word.trim())));
            }
        }
        out.extend(expand_inner(words, depth + 1)?);
    }
    Ok(out)
}

/// The lines of a file as Python's `str.splitlines` cuts them: at `\n`,
/// `\r`, `\r\n`, vertical tab, form feed, the file, group and record
/// separators, NEL and the Unicode line and paragraph separators.
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = match c {
            '\r' if chars.peek().is_some_and(|(_, n)| *n == '\n') => {
                chars.next();
                i + 2
            }
            '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => i + c.len_utf8(),
            _ => continue,
        };
        lines.push(&text[start..i]);
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// One line split as Python's `shlex.shlex(line, posix=True)` with
/// `whitespace_split=True` and `escapedquotes="'\""` splits it.
pub(crate) fn split_line(line: &str) -> Result<Vec<String>, ArgfileError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has started (an empty quoted string is a word).
    let mut started = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '#' => break,
            '\\' => {
                started = true;
                // A trailing backslash escapes nothing: shlex refuses it.
                match chars.next() {
                    Some(e) => word.push(e),
                    None => return Err(ArgfileError::Unsplittable("No escaped character".into())),
                }
            }
            '\'' | '"' => {
                started = true;
                loop {
                    match chars.next() {
                        None => return Err(ArgfileError::Unsplittable("No closing quotation".into())),
                        Some(q) if q == c => break,
                        // Escapes work in both kinds of quotes, for the
                        // quote itself and the backslash.
                        Some('\\') => match chars.next() {
                            Some(e) if e == c || e == '\\' => word.push(e),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => return Err(ArgfileError::Unsplittable("No closing quotation".into())),
                        },
                        Some(q) => word.push(q),
                    }
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    Ok(words)
}

/// Python's `os.path.expanduser` then `os.path.expandvars` (an undefined
/// variable is left as it is).
fn expand_word(word: &str) -> String {
    let word = expand_user(word);
    expand_vars(&word)
}

fn expand_user(word: &str) -> String {
    if !word.starts_with('~') {
        return word.to_owned();
    }
    let end = word.find('/').unwrap_or(word.len());
    let (user, rest) = word.split_at(end);
    let home = if user == "~" {
        std::env::var("HOME").ok()
    } else {
        // ~name: that user's home from /etc/passwd.
        let name = &user[1..];
        std::fs::read_to_string("/etc/passwd").ok().and_then(|passwd| {
            passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 5 && f[0] == name).then(|| f[5].to_owned())
            })
        })
    };
    match home {
        Some(h) => {
            let joined = format!("{}{rest}", h.trim_end_matches('/'));
            if joined.is_empty() {
                "/".to_owned()
            } else {
                joined
            }
        }
        None => word.to_owned(),
    }
}

fn expand_vars(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match std::env::var(name) {
            Ok(v) if !name.is_empty() => {
                out.push_str(&v);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Vec<String> {
        split_line(line).unwrap()
    }

    /// What Python's shlex (posix, whitespace_split, escapedquotes "'\"")
    /// gives for these lines, as aws-encryption-cli 4.3 reads them.
    #[test]
    fn lines_split_as_python_splits_them() {
        assert_eq!(
            split("--wrapping-keys key=ARN   # the key"),
            ["--wrapping-keys", "key=ARN"]
        );
        assert_eq!(split("key=a#b c"), ["key=a"]);
        assert_eq!(split("# only a comment"), Vec::<String>::new());
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split(r"a\#b"), ["a#b"]);
        assert_eq!(split(r#""a#b" 'c d'"#), ["a#b", "c d"]);
        assert_eq!(split(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(split(r"a\ b"), ["a b"]);
        assert_eq!(split(r"'it\'s' x"), ["it's", "x"]);
        assert_eq!(split(r#""a\nb""#), [r"a\nb"]);
        assert_eq!(split(r#""" x"#), ["", "x"]);
        assert_eq!(
            split_line("\"open"),
            Err(ArgfileError::Unsplittable("No closing quotation".into()))
        );
    }

    #[test]
    fn files_nest_and_expand_home_and_variables() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("inner.conf");
        std::fs::write(&inner, "-S  # quiet\n").unwrap();
        let outer = dir.path().join("outer.conf");
        std::fs::write(
            &outer,
            format!(
                "--output ~/out\n@{}\n-c \"k=$ENVSEAL_ARGFILE_TEST\" $UNDEFINED_ENVSEAL_VAR\n",
                inner.display()
            ),
        )
        .unwrap();
        std::env::set_var("ENVSEAL_ARGFILE_TEST", "v 1");
        let home = std::env::var("HOME").unwrap();
        let got = expand(vec!["-e".into(), format!("@{}", outer.display()).into()]).unwrap();
        let want: Vec<OsString> = [
            "-e",
            "--output",
            &format!("{}/out", home.trim_end_matches('/')),
            "-S",
            "-c",
            "k=v 1",
            "$UNDEFINED_ENVSEAL_VAR",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(got, want);
        let missing = expand(vec!["@/nonexistent/envseal.args".into()]);
        assert!(matches!(missing, Err(ArgfileError::Unreadable(m)) if m.contains("No such file")));
        // Any number side by side; only the depth is bounded.
        let many = dir.path().join("many.conf");
        std::fs::write(&many, format!("@{}\n", inner.display()).repeat(100)).unwrap();
        assert_eq!(
            expand(vec![format!("@{}", many.display()).into()]).unwrap().len(),
            100
        );
        let looped = dir.path().join("loop.conf");
        std::fs::write(&looped, format!("@{}\n", looped.display())).unwrap();
        assert!(matches!(
            expand(vec![format!("@{}", looped.display()).into()]),
            Err(ArgfileError::Unreadable(_))
        ));
    }
}
