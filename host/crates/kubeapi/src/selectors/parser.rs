//! The parser of label selectors, a port of `labels.Parser` in
//! `k8s.io/apimachinery/pkg/labels/selector.go` over the [`super::lexer`]'s tokens, with its
//! error wording.

use std::collections::BTreeSet;

use super::label::{LabelSelectorError, Op, Requirement, new_requirement};
use super::lexer::Token;
use super::validation::validate_label_key;

/// `found '<what>', expected: <expected>`.
fn unexpected(found: String, expected: &'static str) -> LabelSelectorError {
    LabelSelectorError::Unexpected { found, expected }
}

/// Where the parser stands: `in` and `notin` are identifiers among values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

pub(super) struct Parser {
    tokens: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    pub(super) fn new(tokens: Vec<(Token, String)>) -> Self {
        Parser {
            tokens,
            position: 0,
        }
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        let (mut tok, lit) = self
            .tokens
            .get(self.position)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        if context == Context::Values && matches!(tok, Token::In | Token::NotIn) {
            tok = Token::Identifier;
        }
        (tok, lit)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.lookahead(context);
        if self.position < self.tokens.len() {
            self.position += 1;
        }
        item
    }

    /// The requirements of the whole selector.
    pub(super) fn parse(&mut self) -> Result<Vec<Requirement>, LabelSelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| LabelSelectorError::Requirement(Box::new(e)))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(unexpected(l2, "identifier after ','"));
                            }
                        }
                        _ => {
                            return Err(unexpected(l, "',' or 'end of string'"));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(unexpected(lit, "!, identifier, or 'end of string'"));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, LabelSelectorError> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Op::Exists | Op::DoesNotExist)) = op {
            return new_requirement(&key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Op::In | Op::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(&key, op, values.into_iter().collect())
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Op>), LabelSelectorError> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            op = Some(Op::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(unexpected(lit, "identifier"));
        }
        if let Err(reason) = validate_label_key(&lit) {
            return Err(LabelSelectorError::Key { key: lit, reason });
        }
        let (t, _) = self.lookahead(Context::Values);
        if (t == Token::EndOfString || t == Token::Comma) && op.is_none() {
            op = Some(Op::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Op, LabelSelectorError> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Op::In,
            Token::Equals => Op::Equals,
            Token::DoubleEquals => Op::DoubleEquals,
            Token::GreaterThan => Op::GreaterThan,
            Token::LessThan => Op::LessThan,
            Token::NotIn => Op::NotIn,
            Token::NotEquals => Op::NotEquals,
            _ => {
                return Err(unexpected(lit, "in, notin, =, ==, !=, gt, lt"));
            }
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, LabelSelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(LabelSelectorError::OpenParenthesisExpected { found: lit });
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let s = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Token::ClosedPar {
                    return Err(unexpected(lit, "')'"));
                }
                Ok(s)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(unexpected(lit, "',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, LabelSelectorError> {
        let mut s = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    s.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(s),
                        _ => return Err(unexpected(lit2, "',' or ')'")),
                    }
                }
                Token::Comma => {
                    if s.is_empty() {
                        s.insert(String::new());
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        s.insert(String::new());
                        return Ok(s);
                    }
                    if tok2 == Token::Comma {
                        self.consume(Context::Values);
                        s.insert(String::new());
                    }
                }
                _ => return Err(unexpected(lit, "',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, LabelSelectorError> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            Ok(BTreeSet::from([lit]))
        } else {
            Err(unexpected(lit, "identifier"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selectors::lexer::lex;

    fn parse(s: &str) -> Result<Vec<Requirement>, LabelSelectorError> {
        Parser::new(lex(s)).parse()
    }

    #[test]
    fn requirements_come_out_in_the_order_written() {
        let keys: Vec<String> = parse("b=1,a,!c,d in (x)")
            .unwrap()
            .iter()
            .map(|r| r.key().to_owned())
            .collect();
        assert_eq!(keys, ["b", "a", "c", "d"]);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn an_empty_value_is_a_value() {
        for (selector, shown) in [
            ("a=", "a="),
            ("a in (,x)", "a in (,x)"),
            ("a in ()", "a in ()"),
        ] {
            let rs = parse(selector).unwrap();
            assert_eq!(rs.len(), 1, "{selector}");
            assert_eq!(rs[0].to_string(), shown, "{selector}");
        }
    }

    #[test]
    fn errors_inside_a_requirement_are_wrapped_once() {
        let e = parse("a in x").unwrap_err();
        assert_eq!(
            e,
            LabelSelectorError::Requirement(Box::new(
                LabelSelectorError::OpenParenthesisExpected { found: "x".into() }
            ))
        );
        assert_eq!(
            e.to_string(),
            "unable to parse requirement: found 'x' expected: '('"
        );
        // Between requirements, errors are not wrapped.
        assert_eq!(
            parse("a,,b").unwrap_err().to_string(),
            "found ',', expected: identifier after ','"
        );
        // A lexer error token is reported as what was found.
        assert_eq!(
            parse("a=>b").unwrap_err().to_string(),
            "unable to parse requirement: found '>', expected: identifier"
        );
    }
}
