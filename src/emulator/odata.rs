//! OData pieces of the Graph emulation: ODataError bodies, JSON responses, `$filter` (the
//! subset directory objects support without advanced queries), `$select`, `$top` paging.

use super::util;
use super::Ctx;
use crate::engine::http::HttpResponse;
use serde_json::{json, Map, Value};

pub fn json_response(status: u16, body: &Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8".into())],
        body: body.to_string(),
    }
}

pub fn no_content() -> HttpResponse {
    HttpResponse {
        status: 204,
        headers: vec![],
        body: String::new(),
    }
}

/// `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`
/// (learn.microsoft.com/graph/errors; `date` without offset, as real Graph sends it).
pub fn error_body(ctx: &Ctx, code: &str, message: &str) -> Value {
    json!({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": util::iso_no_offset(ctx.now_ms),
            "request-id": ctx.request_id,
            "client-request-id": ctx.client_request_id.clone().unwrap_or_else(|| ctx.request_id.clone()),
        }
    }})
}

pub fn error(ctx: &Ctx, status: u16, code: &str, message: &str) -> HttpResponse {
    json_response(status, &error_body(ctx, code, message))
}

pub fn bad_request(ctx: &Ctx, message: &str) -> HttpResponse {
    error(ctx, 400, "Request_BadRequest", message)
}

/// The directory's 404 for an id it cannot see (also what replication lag looks like).
pub fn not_found(ctx: &Ctx, id: &str) -> HttpResponse {
    error(
        ctx,
        404,
        "Request_ResourceNotFound",
        &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

pub fn forbidden(ctx: &Ctx) -> HttpResponse {
    error(
        ctx,
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

pub fn unsupported_query(ctx: &Ctx, message: &str) -> HttpResponse {
    error(ctx, 400, "Request_UnsupportedQuery", message)
}

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Eq(String, Lit),
    Ne(String, Lit),
    In(String, Vec<Lit>),
    StartsWith(String, String),
    EndsWith(String, String),
    /// `prop/any(x:x eq 'v')` on a collection of strings.
    AnyEq(String, String),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    /// GUIDs, numbers, true/false written without quotes.
    Bare(String),
    Null,
}

impl Lit {
    fn matches(&self, v: Option<&Value>) -> bool {
        match (self, v) {
            (Lit::Null, None) | (Lit::Null, Some(Value::Null)) => true,
            (Lit::Null, _) => false,
            (Lit::Str(s) | Lit::Bare(s), Some(Value::String(x))) => x.eq_ignore_ascii_case(s),
            (Lit::Bare(s), Some(Value::Bool(b))) => {
                s.eq_ignore_ascii_case(if *b { "true" } else { "false" })
            }
            (Lit::Bare(s), Some(Value::Number(n))) => n.to_string() == *s,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
    Colon,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = vec![];
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1
            }
            '\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    if i >= cs.len() {
                        return Err("unterminated string literal".into());
                    }
                    if cs[i] == '\'' {
                        if i + 1 < cs.len() && cs[i + 1] == '\'' {
                            v.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    v.push(cs[i]);
                    i += 1;
                }
                out.push(Tok::Str(v));
            }
            _ => {
                let start = i;
                while i < cs.len()
                    && !matches!(
                        cs[i],
                        ' ' | '\t' | '\n' | '\r' | '(' | ')' | ',' | '\'' | ':'
                    )
                {
                    i += 1;
                }
                out.push(Tok::Ident(cs[start..i].iter().collect()));
            }
        }
        if out.len() > 400 {
            return Err("filter too long".into());
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: Tok) -> Result<(), String> {
        if self.next().as_ref() == Some(&t) {
            Ok(())
        } else {
            Err(format!("expected {t:?}"))
        }
    }
    fn kw(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(k))
    }
    fn or(&mut self) -> Result<Filter, String> {
        let mut l = self.and()?;
        while self.kw("or") {
            self.pos += 1;
            let r = self.and()?;
            l = Filter::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Filter, String> {
        let mut l = self.unary()?;
        while self.kw("and") {
            self.pos += 1;
            let r = self.unary()?;
            l = Filter::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > 50 {
            return Err("filter nested too deeply".into());
        }
        let r = if self.kw("not") {
            self.pos += 1;
            Ok(Filter::Not(Box::new(self.unary()?)))
        } else {
            self.primary()
        };
        self.depth -= 1;
        r
    }
    fn lit(&mut self) -> Result<Lit, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Ident(s)) if s == "null" => Ok(Lit::Null),
            Some(Tok::Ident(s)) => Ok(Lit::Bare(s)),
            _ => Err("expected a literal".into()),
        }
    }
    fn primary(&mut self) -> Result<Filter, String> {
        match self.next() {
            Some(Tok::LParen) => {
                let f = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(f)
            }
            Some(Tok::Ident(name)) => {
                let lname = name.to_ascii_lowercase();
                if (lname == "startswith" || lname == "endswith")
                    && self.peek() == Some(&Tok::LParen)
                {
                    self.pos += 1;
                    let prop = match self.next() {
                        Some(Tok::Ident(p)) => p,
                        _ => return Err("expected a property".into()),
                    };
                    self.expect(Tok::Comma)?;
                    let v = match self.next() {
                        Some(Tok::Str(s)) => s,
                        _ => return Err("expected a string".into()),
                    };
                    self.expect(Tok::RParen)?;
                    return Ok(if lname == "startswith" {
                        Filter::StartsWith(prop, v)
                    } else {
                        Filter::EndsWith(prop, v)
                    });
                }
                if let Some((coll, lam)) = name.split_once('/') {
                    if lam.eq_ignore_ascii_case("any") {
                        // prop/any(x:x eq 'v')
                        self.expect(Tok::LParen)?;
                        let var = match self.next() {
                            Some(Tok::Ident(v)) => v,
                            _ => return Err("expected a lambda variable".into()),
                        };
                        self.expect(Tok::Colon)?;
                        match self.next() {
                            Some(Tok::Ident(v)) if v == var => {}
                            _ => return Err("unsupported lambda".into()),
                        }
                        if !self.kw("eq") {
                            return Err("unsupported lambda operator".into());
                        }
                        self.pos += 1;
                        let v = match self.next() {
                            Some(Tok::Str(s)) => s,
                            _ => return Err("expected a string".into()),
                        };
                        self.expect(Tok::RParen)?;
                        return Ok(Filter::AnyEq(coll.to_string(), v));
                    }
                }
                let op = match self.next() {
                    Some(Tok::Ident(op)) => op.to_ascii_lowercase(),
                    _ => return Err(format!("expected an operator after '{name}'")),
                };
                match op.as_str() {
                    "eq" => Ok(Filter::Eq(name, self.lit()?)),
                    "ne" => Ok(Filter::Ne(name, self.lit()?)),
                    "in" => {
                        self.expect(Tok::LParen)?;
                        let mut vals = vec![self.lit()?];
                        while self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                            vals.push(self.lit()?);
                        }
                        self.expect(Tok::RParen)?;
                        if vals.len() > 15 {
                            // Graph limits `in` to 15 values on directory objects.
                            return Err("Too many values in 'in' clause".into());
                        }
                        Ok(Filter::In(name, vals))
                    }
                    _ => Err(format!("unsupported operator '{op}'")),
                }
            }
            _ => Err("syntax error".into()),
        }
    }
}

pub fn parse_filter(s: &str) -> Result<Filter, String> {
    let toks = lex(s)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let f = p.or()?;
    if p.pos != p.toks.len() {
        return Err("syntax error".into());
    }
    Ok(f)
}

impl Filter {
    /// Whether this filter needs `ConsistencyLevel: eventual` + `$count=true` (advanced query).
    pub fn is_advanced(&self) -> bool {
        match self {
            Filter::Ne(..) | Filter::Not(..) | Filter::EndsWith(..) => true,
            Filter::And(a, b) | Filter::Or(a, b) => a.is_advanced() || b.is_advanced(),
            _ => false,
        }
    }
    pub fn props(&self, out: &mut Vec<String>) {
        match self {
            Filter::Eq(p, _)
            | Filter::Ne(p, _)
            | Filter::In(p, _)
            | Filter::StartsWith(p, _)
            | Filter::EndsWith(p, _)
            | Filter::AnyEq(p, _) => out.push(p.clone()),
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.props(out);
                b.props(out)
            }
            Filter::Not(a) => a.props(out),
        }
    }
    pub fn eval(&self, obj: &Value) -> bool {
        let get = |p: &str| -> Option<&Value> {
            let mut cur = obj;
            for seg in p.split('/') {
                cur = cur.get(seg)?;
            }
            Some(cur)
        };
        match self {
            Filter::Eq(p, l) => l.matches(get(p)),
            Filter::Ne(p, l) => !l.matches(get(p)),
            Filter::In(p, ls) => ls.iter().any(|l| l.matches(get(p))),
            Filter::StartsWith(p, v) => get(p)
                .and_then(Value::as_str)
                .is_some_and(|s| s.to_lowercase().starts_with(&v.to_lowercase())),
            Filter::EndsWith(p, v) => get(p)
                .and_then(Value::as_str)
                .is_some_and(|s| s.to_lowercase().ends_with(&v.to_lowercase())),
            Filter::AnyEq(p, v) => get(p).and_then(Value::as_array).is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str().is_some_and(|s| s.eq_ignore_ascii_case(v)))
            }),
            Filter::And(a, b) => a.eval(obj) && b.eval(obj),
            Filter::Or(a, b) => a.eval(obj) || b.eval(obj),
            Filter::Not(a) => !a.eval(obj),
        }
    }
}

/// Keeps only the `$select`ed top-level properties (and `@odata.*` annotations).
pub fn apply_select(v: &Value, select: &[String]) -> Value {
    if select.is_empty() {
        return v.clone();
    }
    match v {
        Value::Object(m) => {
            let mut o = Map::new();
            for (k, val) in m {
                if k.starts_with('@') || select.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                    o.insert(k.clone(), val.clone());
                }
            }
            Value::Object(o)
        }
        other => other.clone(),
    }
}

/// Parsed query options of a Graph request.
#[derive(Debug, Default)]
pub struct Query {
    pub filter: Option<String>,
    pub select: Vec<String>,
    pub top: Option<usize>,
    pub skiptoken: Option<usize>,
    pub count: bool,
    pub other: Vec<String>,
}

pub fn parse_query(q: &str) -> Query {
    let mut out = Query::default();
    for (k, v) in util::query_pairs(q) {
        match k.as_str() {
            "$filter" => out.filter = Some(v),
            "$select" => {
                out.select = v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "$top" => out.top = v.trim().parse().ok().or(Some(0)),
            "$skiptoken" => out.skiptoken = v.trim().parse().ok(),
            "$count" => out.count = v.eq_ignore_ascii_case("true"),
            k if k.starts_with('$') => out.other.push(k.to_string()),
            _ => {}
        }
    }
    out
}
