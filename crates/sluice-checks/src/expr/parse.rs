//! Parsing the predicate language: text to tokens to an [`Expr`].
//!
//! ```text
//! expr      := or
//! or        := and ( OR and )*
//! and       := not ( AND not )*
//! not       := NOT not | predicate
//! predicate := sum [ (= | == | != | <> | < | <= | > | >=) sum
//!                  | IS [NOT] NULL
//!                  | [NOT] IN ( expr, ... )
//!                  | [NOT] BETWEEN sum AND sum ]
//! sum       := product ( (+ | -) product )*
//! product   := unary ( (* | / | %) unary )*
//! unary     := - unary | primary
//! primary   := number | 'string' | TRUE | FALSE | NULL | column | "quoted column" | ( expr )
//! ```

use super::{ArithOp, CmpOp, Expr, Literal};
use crate::error::{Error, Result};

/// Parses an expression.
pub(super) fn parse(text: &str) -> Result<Expr> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
    };
    let expr = parser.or()?;
    if let Some(t) = parser.peek() {
        return Err(parser.error_at(t.pos, "unexpected text after the end of the expression"));
    }
    Ok(expr)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    QuotedIdent(String),
    Str(String),
    Int(i64),
    Float(f64),
    Sym(&'static str),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn expr_error(text: &str, position: usize, message: impl Into<String>) -> Error {
    Error::InvalidExpression {
        text: text.to_string(),
        position,
        message: message.into(),
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            Tok::Ident(chars[start..i].iter().collect())
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let mut float = false;
            while i < chars.len() {
                let d = chars[i];
                if d.is_ascii_digit() || d == '_' {
                    i += 1;
                } else if d == '.' && !float {
                    float = true;
                    i += 1;
                } else if (d == 'e' || d == 'E')
                    && chars
                        .get(i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || *n == '-' || *n == '+')
                {
                    float = true;
                    i += 2;
                } else {
                    break;
                }
            }
            let literal: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            if float {
                Tok::Float(
                    literal
                        .parse()
                        .map_err(|_| expr_error(text, start, "invalid number"))?,
                )
            } else {
                Tok::Int(
                    literal
                        .parse()
                        .map_err(|_| expr_error(text, start, "integer does not fit in 64 bits"))?,
                )
            }
        } else if c == '\'' || c == '"' || c == '`' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(expr_error(text, start, "unterminated quote"));
                    }
                    Some(&q) if q == c => {
                        if chars.get(i + 1) == Some(&c) {
                            s.push(c);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            if c == '\'' {
                Tok::Str(s)
            } else {
                Tok::QuotedIdent(s)
            }
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "<=" => Some("<="),
                ">=" => Some(">="),
                "<>" => Some("<>"),
                "!=" => Some("!="),
                "==" => Some("="),
                _ => None,
            };
            if let Some(s) = sym {
                i += 2;
                Tok::Sym(s)
            } else {
                i += 1;
                Tok::Sym(match c {
                    '=' => "=",
                    '<' => "<",
                    '>' => ">",
                    '+' => "+",
                    '-' => "-",
                    '*' => "*",
                    '/' => "/",
                    '%' => "%",
                    '(' => "(",
                    ')' => ")",
                    ',' => ",",
                    other => {
                        return Err(expr_error(
                            text,
                            start,
                            format!("unexpected character `{other}`"),
                        ));
                    }
                })
            }
        };
        tokens.push(Token { tok, pos: start });
    }
    Ok(tokens)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn end_pos(&self) -> usize {
        self.text.chars().count()
    }

    fn error_at(&self, position: usize, message: impl Into<String>) -> Error {
        expr_error(self.text, position, message)
    }

    fn here(&self) -> usize {
        self.peek().map(|t| t.pos).unwrap_or_else(|| self.end_pos())
    }

    fn keyword(&mut self, word: &str) -> bool {
        if let Some(Token {
            tok: Tok::Ident(w), ..
        }) = self.peek()
            && w.eq_ignore_ascii_case(word)
        {
            self.pos += 1;
            return true;
        }
        false
    }

    fn peek_keyword(&self, offset: usize, word: &str) -> bool {
        matches!(self.tokens.get(self.pos + offset), Some(Token { tok: Tok::Ident(w), .. }) if w.eq_ignore_ascii_case(word))
    }

    fn sym(&mut self, s: &str) -> bool {
        if let Some(Token {
            tok: Tok::Sym(x), ..
        }) = self.peek()
            && *x == s
        {
            self.pos += 1;
            return true;
        }
        false
    }

    fn expect_sym(&mut self, s: &str) -> Result<()> {
        if self.sym(s) {
            Ok(())
        } else {
            Err(self.error_at(self.here(), format!("expected `{s}`")))
        }
    }

    fn or(&mut self) -> Result<Expr> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr> {
        let left = self.sum()?;
        let op = match self.peek() {
            Some(Token {
                tok: Tok::Sym(s), ..
            }) => match *s {
                "=" => Some(CmpOp::Eq),
                "!=" | "<>" => Some(CmpOp::NotEq),
                "<" => Some(CmpOp::Lt),
                "<=" => Some(CmpOp::LtEq),
                ">" => Some(CmpOp::Gt),
                ">=" => Some(CmpOp::GtEq),
                _ => None,
            },
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let right = self.sum()?;
            return Ok(Expr::Cmp(op, Box::new(left), Box::new(right)));
        }
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            if !self.keyword("NULL") {
                return Err(self.error_at(self.here(), "expected NULL after IS / IS NOT"));
            }
            return Ok(Expr::IsNull(Box::new(left), negated));
        }
        let negated = if self.peek_keyword(0, "NOT")
            && (self.peek_keyword(1, "IN") || self.peek_keyword(1, "BETWEEN"))
        {
            self.pos += 1;
            true
        } else {
            false
        };
        if self.keyword("IN") {
            self.expect_sym("(")?;
            let mut list = vec![self.or()?];
            while self.sym(",") {
                list.push(self.or()?);
            }
            self.expect_sym(")")?;
            return Ok(Expr::InList(Box::new(left), list, negated));
        }
        if self.keyword("BETWEEN") {
            let low = self.sum()?;
            if !self.keyword("AND") {
                return Err(self.error_at(self.here(), "expected AND in BETWEEN ... AND ..."));
            }
            let high = self.sum()?;
            let left = Box::new(left);
            let between = Expr::And(
                Box::new(Expr::Cmp(CmpOp::GtEq, left.clone(), Box::new(low))),
                Box::new(Expr::Cmp(CmpOp::LtEq, left, Box::new(high))),
            );
            return Ok(if negated {
                Expr::Not(Box::new(between))
            } else {
                between
            });
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Expr> {
        let mut left = self.product()?;
        loop {
            let op = if self.sym("+") {
                ArithOp::Add
            } else if self.sym("-") {
                ArithOp::Sub
            } else {
                return Ok(left);
            };
            let right = self.product()?;
            left = Expr::Arith(op, Box::new(left), Box::new(right));
        }
    }

    fn product(&mut self) -> Result<Expr> {
        let mut left = self.unary()?;
        loop {
            let op = if self.sym("*") {
                ArithOp::Mul
            } else if self.sym("/") {
                ArithOp::Div
            } else if self.sym("%") {
                ArithOp::Rem
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Expr::Arith(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr> {
        if self.sym("-") {
            let inner = self.unary()?;
            return Ok(match inner {
                Expr::Literal(Literal::Int(i)) => Expr::Literal(Literal::Int(-i)),
                Expr::Literal(Literal::Float(f)) => Expr::Literal(Literal::Float(-f)),
                other => Expr::Neg(Box::new(other)),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr> {
        let Some(token) = self.tokens.get(self.pos).cloned() else {
            return Err(self.error_at(self.end_pos(), "expected a value, a column or `(`"));
        };
        self.pos += 1;
        Ok(match token.tok {
            Tok::Int(i) => Expr::Literal(Literal::Int(i)),
            Tok::Float(f) => Expr::Literal(Literal::Float(f)),
            Tok::Str(s) => Expr::Literal(Literal::Str(s)),
            Tok::QuotedIdent(name) => Expr::Column(name),
            Tok::Ident(word) => {
                let upper = word.to_ascii_uppercase();
                match upper.as_str() {
                    "TRUE" => Expr::Literal(Literal::Bool(true)),
                    "FALSE" => Expr::Literal(Literal::Bool(false)),
                    "NULL" => Expr::Literal(Literal::Null),
                    "AND" | "OR" | "NOT" | "IS" | "IN" | "BETWEEN" => {
                        return Err(self.error_at(
                            token.pos,
                            format!("expected a value or a column, found keyword {upper}"),
                        ));
                    }
                    _ => Expr::Column(word),
                }
            }
            Tok::Sym("(") => {
                let inner = self.or()?;
                self.expect_sym(")")?;
                inner
            }
            Tok::Sym(s) => {
                return Err(self.error_at(
                    token.pos,
                    format!("expected a value or a column, found `{s}`"),
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_point_at_the_problem() {
        let err = Expr::parse("amount >= ").unwrap_err();
        match err {
            Error::InvalidExpression { position, .. } => assert_eq!(position, 10),
            other => panic!("unexpected {other}"),
        }
        let err = Expr::parse("amount >= 0 event_type").unwrap_err();
        assert!(
            matches!(err, Error::InvalidExpression { position: 12, .. }),
            "{err}"
        );
        assert!(Expr::parse("a = 'x").is_err());
        assert!(Expr::parse("a IS 3").is_err());
        assert!(Expr::parse("(a = 1").is_err());
        assert!(Expr::parse("a = 1 AND").is_err());
    }
}
