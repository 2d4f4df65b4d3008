//! The lexer of label selectors, a port of `labels.Lexer` in
//! `k8s.io/apimachinery/pkg/labels/selector.go`: identifiers, keywords (`in`, `notin`) and the
//! operators `=`, `==`, `!=`, `!`, `>`, `<`, `(`, `)`, `,`.

/// A token of the label-selector grammar. A run of symbols that is no operator is an `Error`
/// token whose literal says so; the parser reports it as what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// The `labels.Lexer`, run to the end (the parser looks ahead freely).
pub(super) fn lex(s: &str) -> Vec<(Token, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < chars.len() && is_whitespace(chars[pos]) {
            pos += 1;
        }
        if pos >= chars.len() {
            out.push((Token::EndOfString, String::new()));
            return out;
        }
        if is_special_symbol(chars[pos]) {
            // Longest run of special symbols that is still a known token.
            let mut buffer = String::new();
            let mut last: Option<(Token, String)> = None;
            while pos < chars.len() && is_special_symbol(chars[pos]) {
                buffer.push(chars[pos]);
                if let Some(t) = keyword(&buffer) {
                    last = Some((t, buffer.clone()));
                    pos += 1;
                } else if last.is_some() {
                    break;
                } else {
                    pos += 1;
                }
            }
            match last {
                Some(item) => out.push(item),
                None => {
                    out.push((
                        Token::Error,
                        format!("error expected: keyword found '{buffer}'"),
                    ));
                }
            }
        } else {
            let start = pos;
            while pos < chars.len() && !is_whitespace(chars[pos]) && !is_special_symbol(chars[pos])
            {
                pos += 1;
            }
            let word: String = chars[start..pos].iter().collect();
            match keyword(&word) {
                Some(t) => out.push((t, word)),
                None => out.push((Token::Identifier, word)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(s: &str) -> Vec<(Token, &'static str)> {
        lex(s)
            .into_iter()
            .map(|(t, lit)| (t, &*String::leak(lit)))
            .collect()
    }

    #[test]
    fn words_and_operators_become_tokens() {
        use Token::*;
        assert_eq!(
            tokens("a in (x, y),!b,c!=d"),
            [
                (Identifier, "a"),
                (In, "in"),
                (OpenPar, "("),
                (Identifier, "x"),
                (Comma, ","),
                (Identifier, "y"),
                (ClosedPar, ")"),
                (Comma, ","),
                (DoesNotExist, "!"),
                (Identifier, "b"),
                (Comma, ","),
                (Identifier, "c"),
                (NotEquals, "!="),
                (Identifier, "d"),
                (EndOfString, ""),
            ]
        );
    }

    #[test]
    fn the_longest_known_operator_wins() {
        use Token::*;
        assert_eq!(
            tokens("a==b"),
            [
                (Identifier, "a"),
                (DoubleEquals, "=="),
                (Identifier, "b"),
                (EndOfString, "")
            ]
        );
        // `=!` is no operator: `=`, then `!`.
        assert_eq!(
            tokens("a=!b"),
            [
                (Identifier, "a"),
                (Equals, "="),
                (DoesNotExist, "!"),
                (Identifier, "b"),
                (EndOfString, ""),
            ]
        );
        assert_eq!(
            tokens("k>1 k<2"),
            [
                (Identifier, "k"),
                (GreaterThan, ">"),
                (Identifier, "1"),
                (Identifier, "k"),
                (LessThan, "<"),
                (Identifier, "2"),
                (EndOfString, ""),
            ]
        );
    }

    #[test]
    fn whitespace_separates_and_an_empty_string_ends_at_once() {
        assert_eq!(tokens(" \t\r\n"), [(Token::EndOfString, "")]);
        assert_eq!(
            tokens("notin\tx"),
            [
                (Token::NotIn, "notin"),
                (Token::Identifier, "x"),
                (Token::EndOfString, "")
            ]
        );
    }
}
