//! CloudWatch metric math, the subset alarms use: tokenizer, parser and
//! evaluation over one period's values.

use std::collections::BTreeMap;

/// A parsed metric-math expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    Id(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            tokens.push(Token::Num(
                s.parse().map_err(|_| format!("bad number {s:?}"))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = match two.as_str() {
                ">=" | "<=" | "==" | "!=" | "&&" | "||" => {
                    i += 2;
                    match two.as_str() {
                        ">=" => ">=",
                        "<=" => "<=",
                        "==" => "==",
                        "!=" => "!=",
                        "&&" => "AND",
                        _ => "OR",
                    }
                }
                _ => {
                    i += 1;
                    match c {
                        '(' => {
                            tokens.push(Token::LParen);
                            continue;
                        }
                        ')' => {
                            tokens.push(Token::RParen);
                            continue;
                        }
                        ',' => {
                            tokens.push(Token::Comma);
                            continue;
                        }
                        '+' => "+",
                        '-' => "-",
                        '*' => "*",
                        '/' => "/",
                        '>' => ">",
                        '<' => "<",
                        '!' => "!",
                        other => return Err(format!("unexpected character {other:?}")),
                    }
                }
            };
            tokens.push(Token::Op(op));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_op(&self) -> Option<&'static str> {
        match self.peek() {
            Some(Token::Op(op)) => Some(op),
            Some(Token::Ident(word)) if word.eq_ignore_ascii_case("AND") => Some("AND"),
            Some(Token::Ident(word)) if word.eq_ignore_ascii_case("OR") => Some("OR"),
            _ => None,
        }
    }

    /// Precedence climbing: OR < AND < comparison < additive < multiplicative.
    fn binary(&mut self, level: usize) -> Result<Expr, String> {
        const LEVELS: [&[&str]; 5] = [
            &["OR"],
            &["AND"],
            &[">", ">=", "<", "<=", "==", "!="],
            &["+", "-"],
            &["*", "/"],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        while let Some(op) = self.peek_op().filter(|op| LEVELS[level].contains(op)) {
            self.pos += 1;
            let right = self.binary(level + 1)?;
            let op = match op {
                "OR" => BinOp::Or,
                "AND" => BinOp::And,
                ">" => BinOp::Gt,
                ">=" => BinOp::Ge,
                "<" => BinOp::Lt,
                "<=" => BinOp::Le,
                "==" => BinOp::Eq,
                "!=" => BinOp::Ne,
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                _ => BinOp::Div,
            };
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Token::Op("-")) => {
                self.pos += 1;
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Some(Token::Op("!")) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("NOT") => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Num(n)) => Ok(Expr::Number(n)),
            Some(Token::LParen) => {
                let e = self.binary(0)?;
                match self.next() {
                    Some(Token::RParen) => Ok(e),
                    _ => Err("expected ')'".into()),
                }
            }
            Some(Token::Ident(name)) => {
                if self.peek() != Some(&Token::LParen) {
                    return Ok(Expr::Id(name));
                }
                self.pos += 1;
                let function = name.to_ascii_uppercase();
                let mut args = Vec::new();
                if self.peek() == Some(&Token::RParen) {
                    self.pos += 1;
                } else {
                    loop {
                        args.push(self.binary(0)?);
                        match self.next() {
                            Some(Token::Comma) => continue,
                            Some(Token::RParen) => break,
                            _ => return Err(format!("expected ',' or ')' in {function}(...)")),
                        }
                    }
                }
                let arity_ok = match function.as_str() {
                    "IF" => args.len() == 2 || args.len() == 3,
                    "ABS" => args.len() == 1,
                    "FILL" => args.len() == 2,
                    "MIN" | "MAX" => !args.is_empty(),
                    _ => return Err(format!("unsupported function {function}")),
                };
                if !arity_ok {
                    return Err(format!("wrong number of arguments to {function}"));
                }
                Ok(Expr::Call(function, args))
            }
            Some(other) => Err(format!("unexpected {other:?}")),
            None => Err("unexpected end of expression".into()),
        }
    }
}

/// Parses a metric-math expression.
pub fn parse_expression(text: &str) -> Result<Expr, String> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        pos: 0,
    };
    let expr = parser.binary(0)?;
    match parser.peek() {
        None => Ok(expr),
        Some(t) => Err(format!("unexpected {t:?} after the expression")),
    }
}

impl Expr {
    /// The metric ids the expression reads.
    pub fn identifiers(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_ids(&mut out);
        out.sort();
        out.dedup();
        out
    }

    fn collect_ids(&self, out: &mut Vec<String>) {
        match self {
            Expr::Number(_) => {}
            Expr::Id(id) => out.push(id.clone()),
            Expr::Neg(e) | Expr::Not(e) => e.collect_ids(out),
            Expr::Binary(_, a, b) => {
                a.collect_ids(out);
                b.collect_ids(out);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.collect_ids(out)),
        }
    }

    /// The value for one period; `None` where an input is missing or the
    /// result is not a finite number.
    pub fn eval(&self, env: &BTreeMap<String, Option<f64>>) -> Option<f64> {
        let truth = |b: bool| if b { 1.0 } else { 0.0 };
        let value = match self {
            Expr::Number(n) => *n,
            Expr::Id(id) => (*env.get(id)?)?,
            Expr::Neg(e) => -e.eval(env)?,
            Expr::Not(e) => truth(e.eval(env)? == 0.0),
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(env)?, b.eval(env)?);
                match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    BinOp::Gt => truth(a > b),
                    BinOp::Ge => truth(a >= b),
                    BinOp::Lt => truth(a < b),
                    BinOp::Le => truth(a <= b),
                    BinOp::Eq => truth(a == b),
                    BinOp::Ne => truth(a != b),
                    BinOp::And => truth(a != 0.0 && b != 0.0),
                    BinOp::Or => truth(a != 0.0 || b != 0.0),
                }
            }
            Expr::Call(function, args) => match function.as_str() {
                "IF" => {
                    // Only the chosen branch must exist; IF(c, a) drops the
                    // point where c is false, as in CloudWatch.
                    if args[0].eval(env)? != 0.0 {
                        args[1].eval(env)?
                    } else {
                        args.get(2)?.eval(env)?
                    }
                }
                "ABS" => args[0].eval(env)?.abs(),
                // FILL(m, v): a period where m has no data counts as v, so a
                // rate whose other term is absent (no order fulfilled at all:
                // EMF writes no zeros) still has a value.
                "FILL" => match args[0].eval(env) {
                    Some(v) => v,
                    None => args[1].eval(env)?,
                },
                "MIN" => args
                    .iter()
                    .map(|a| a.eval(env))
                    .collect::<Option<Vec<f64>>>()?
                    .into_iter()
                    .fold(f64::INFINITY, f64::min),
                "MAX" => args
                    .iter()
                    .map(|a| a.eval(env))
                    .collect::<Option<Vec<f64>>>()?
                    .into_iter()
                    .fold(f64::NEG_INFINITY, f64::max),
                _ => return None,
            },
        };
        value.is_finite().then_some(value)
    }
}
