//! Azure Resource Graph's query language, the subset the simulator runs:
//! parsing a query and evaluating it over rows. Pure functions; the route
//! (`POST /providers/Microsoft.ResourceGraph/resources`) builds the rows
//! from the simulator's state and wraps the result in ARG's answer.
//!
//! The subset:
//!
//! * a table: `resources`, `resourcecontainers` or `authorizationresources`
//!   (any casing, as ARG accepts; a query that starts with an operator runs
//!   on `resources`, as in ARG);
//! * tabular operators after `|`: `where` (`filter`), `project`,
//!   `project-away`, `extend`, `limit` / `take`, `order by` / `sort by`
//!   (`asc` / `desc`, default `desc`; `nulls first` / `nulls last`);
//! * predicates: `==`, `!=`, `=~`, `!~`, `<`, `<=`, `>`, `>=`, `contains`,
//!   `has`, `startswith`, `endswith` (each also negated with `!` and
//!   case-sensitive with `_cs`), `in` / `!in` / `in~` / `!in~ (…)`, joined
//!   with `and` (binding tighter) and `or`, in parentheses;
//! * operands: columns, nested values (`properties.a.b`, `tags['env']`,
//!   `tags["env"]`, `properties.['a.b']`, `zones[0]`), string literals
//!   (`'…'` and `"…"` with `\` escapes or a doubled quote, `@'…'` verbatim),
//!   numbers, `true` / `false`, and the functions `tostring()`, `not()`,
//!   `isempty()`, `isnotempty()`, `isnull()`, `isnotnull()`.
//!
//! Operators and functions are case-sensitive and columns are too, as in
//! KQL; the string operators without `_cs` ignore case. A missing value
//! compares as an empty string. Anything else (`join`, `summarize`,
//! `mv-expand`, `union`, `let`, other functions and operators) is refused
//! with a [`QueryError`] naming the part.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Number, Value};

/// The tables the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Resources,
    ResourceContainers,
    AuthorizationResources,
}

impl Table {
    fn named(name: &str) -> Option<Table> {
        match name.to_ascii_lowercase().as_str() {
            "resources" => Some(Table::Resources),
            "resourcecontainers" => Some(Table::ResourceContainers),
            "authorizationresources" => Some(Table::AuthorizationResources),
            _ => None,
        }
    }
}

/// The columns of every table the simulator serves, in ARG's order, with
/// the types ARG's table format names.
pub(crate) const COLUMNS: [(&str, &str); 16] = [
    ("id", "string"),
    ("name", "string"),
    ("type", "string"),
    ("tenantId", "string"),
    ("kind", "string"),
    ("location", "string"),
    ("resourceGroup", "string"),
    ("subscriptionId", "string"),
    ("managedBy", "string"),
    ("sku", "object"),
    ("plan", "object"),
    ("properties", "object"),
    ("tags", "object"),
    ("identity", "object"),
    ("zones", "object"),
    ("extendedLocation", "object"),
];

/// Why a query is refused: the explanation in ARG's `InvalidQuery`
/// detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError(pub String);

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(message.into()))
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub table: Table,
    ops: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Where(Expr),
    Project(Vec<(String, Expr)>),
    ProjectAway(Vec<String>),
    Extend(Vec<(String, Expr)>),
    Limit(usize),
    Order(Vec<SortKey>),
}

#[derive(Debug, Clone, PartialEq)]
struct SortKey {
    expr: Expr,
    descending: bool,
    nulls_first: bool,
}

/// One step into a nested value.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Field(String),
    Index(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    ToString,
    Not,
    IsEmpty,
    IsNotEmpty,
    IsNull,
    IsNotNull,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    EqCi,
    NeCi,
    Lt,
    Le,
    Gt,
    Ge,
    /// `contains`, `has`, `startswith`, `endswith` and their variants.
    Text {
        kind: TextOp,
        negated: bool,
        case_sensitive: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextOp {
    Contains,
    Has,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Column {
        name: String,
        keys: Vec<Key>,
    },
    Literal(Value),
    Call(Func, Box<Expr>),
    Compare(Cmp, Box<Expr>, Box<Expr>),
    In {
        value: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// The result of a query: named columns and rows of values in their order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Output {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

// ---------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A name, keyword or word operator (`project-away`, `!contains`, `in~`).
    Word(String),
    Str(String),
    Num(Number),
    Sym(&'static str),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("the string '{s}'"),
            Tok::Num(n) => format!("the number {n}"),
            Tok::Sym(s) => format!("'{s}'"),
        }
    }
}

const SYMBOLS: [&str; 20] = [
    "==", "!=", "=~", "!~", "<=", ">=", "<", ">", "=", "|", "(", ")", "[", "]", ",", ".", "-", ";",
    "+", "*",
];

fn tokenize(text: &str) -> Result<Vec<Tok>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            let (text, next) = string_literal(&chars, i + 1, c, false)?;
            tokens.push(Tok::Str(text));
            i = next;
            continue;
        }
        if c == '@' && matches!(chars.get(i + 1), Some('\'') | Some('"')) {
            let (text, next) = string_literal(&chars, i + 2, chars[i + 1], true)?;
            tokens.push(Tok::Str(text));
            i = next;
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let literal: String = chars[start..i].iter().collect();
            let number = if literal.contains('.') {
                literal.parse::<f64>().ok().and_then(Number::from_f64)
            } else {
                literal.parse::<i64>().ok().map(Number::from)
            };
            match number {
                Some(n) => tokens.push(Tok::Num(n)),
                None => return err(format!("'{literal}' is not a valid number.")),
            }
            continue;
        }
        if c == '!' && chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) {
            let (word, next) = word_at(&chars, i + 1);
            tokens.push(Tok::Word(format!("!{word}")));
            i = next;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let (word, next) = word_at(&chars, i);
            tokens.push(Tok::Word(word));
            i = next;
            continue;
        }
        let symbol = SYMBOLS.iter().find(|s| {
            let s: Vec<char> = s.chars().collect();
            chars[i..].starts_with(&s)
        });
        match symbol {
            Some(symbol) => {
                tokens.push(Tok::Sym(symbol));
                i += symbol.len();
            }
            None => return err(format!("The character '{c}' is not expected here.")),
        }
    }
    Ok(tokens)
}

/// A word from `start`: letters, digits and `_`, joined by `-` to a
/// following word (`project-away`, `mv-expand`), with a trailing `~` on
/// `in` (`in~`).
fn word_at(chars: &[char], start: usize) -> (String, usize) {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut i = start;
    while i < chars.len() && is_word(chars[i]) {
        i += 1;
    }
    while i + 1 < chars.len() && chars[i] == '-' && chars[i + 1].is_ascii_alphabetic() {
        let prefix: String = chars[start..i].iter().collect();
        if !matches!(prefix.as_str(), "project" | "mv" | "make" | "top") {
            break;
        }
        i += 1;
        while i < chars.len() && is_word(chars[i]) {
            i += 1;
        }
    }
    let mut word: String = chars[start..i].iter().collect();
    if word == "in" && chars.get(i) == Some(&'~') {
        word.push('~');
        i += 1;
    }
    (word, i)
}

/// A string literal whose opening quote is just before `start`: `\`
/// escapes (unless verbatim) and a doubled quote stand for one character.
fn string_literal(
    chars: &[char],
    start: usize,
    quote: char,
    verbatim: bool,
) -> Result<(String, usize), QueryError> {
    let mut text = String::new();
    let mut i = start;
    loop {
        match chars.get(i) {
            None => return err("A string literal is not terminated."),
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    text.push(quote);
                    i += 2;
                } else {
                    return Ok((text, i + 1));
                }
            }
            Some('\\') if !verbatim => {
                let escaped = match chars.get(i + 1) {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('0') => '\0',
                    Some(&c @ ('\\' | '\'' | '"')) => c,
                    Some(c) => return err(format!("The escape sequence '\\{c}' is not valid.")),
                    None => return err("A string literal is not terminated."),
                };
                text.push(escaped);
                i += 2;
            }
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing

/// The tabular operators the simulator runs, for messages.
const SUPPORTED_OPERATORS: &str =
    "where, project, project-away, extend, order by, sort by, limit and take";

/// Parses `text`.
pub(crate) fn parse(text: &str) -> Result<Query, QueryError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return err("The query is empty.");
    }
    let mut p = Parser { tokens, at: 0 };
    let mut implicit = true;
    let table = match p.peek() {
        Some(Tok::Word(w)) if w == "let" => {
            return err(
                "The ARM simulator does not support 'let' statements; write the query as one tabular expression.",
            );
        }
        Some(Tok::Word(w)) if is_tabular_operator(w) => Table::Resources,
        Some(Tok::Word(w)) => {
            let name = w.clone();
            p.at += 1;
            implicit = false;
            match Table::named(&name) {
                Some(table) => table,
                None => {
                    return err(format!(
                        "The table '{name}' is not served by the ARM simulator; it serves resources, \
                         resourcecontainers and authorizationresources."
                    ));
                }
            }
        }
        Some(Tok::Sym("|")) => Table::Resources,
        Some(other) => {
            return err(format!(
                "A query starts with a table name, not {}.",
                other.describe()
            ));
        }
        None => return err("The query is empty."),
    };
    let mut ops = Vec::new();
    let mut first = true;
    loop {
        match p.peek() {
            None => break,
            Some(Tok::Sym(";")) if p.at + 1 == p.tokens.len() => break,
            Some(Tok::Sym("|")) => p.at += 1,
            Some(Tok::Word(w)) if first && implicit && is_tabular_operator(w) => {}
            Some(other) => {
                return err(format!(
                    "Expected '|' before the next operator, found {}.",
                    other.describe()
                ));
            }
        }
        first = false;
        ops.push(p.operator()?);
    }
    Ok(Query { table, ops })
}

fn is_tabular_operator(word: &str) -> bool {
    matches!(
        word,
        "where"
            | "filter"
            | "project"
            | "project-away"
            | "extend"
            | "limit"
            | "take"
            | "order"
            | "sort"
    )
}

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn peek_at(&self, offset: usize) -> Option<&Tok> {
        self.tokens.get(self.at + offset)
    }

    fn next(&mut self) -> Option<Tok> {
        let token = self.tokens.get(self.at).cloned();
        if token.is_some() {
            self.at += 1;
        }
        token
    }

    fn eat_sym(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == symbol) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, symbol: &str, context: &str) -> Result<(), QueryError> {
        if self.eat_sym(symbol) {
            return Ok(());
        }
        match self.peek() {
            Some(token) => err(format!(
                "Expected '{symbol}' {context}, found {}.",
                token.describe()
            )),
            None => err(format!(
                "Expected '{symbol}' {context}, but the query ends."
            )),
        }
    }

    /// At the end of an operator: `|`, `;` or the end.
    fn at_operator_end(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(Tok::Sym("|")) | Some(Tok::Sym(";"))
        )
    }

    fn operator(&mut self) -> Result<Op, QueryError> {
        let word = match self.next() {
            Some(Tok::Word(w)) => w,
            Some(other) => {
                return err(format!(
                    "Expected a tabular operator after '|', found {}.",
                    other.describe()
                ));
            }
            None => return err("Expected a tabular operator after '|', but the query ends."),
        };
        let op = match word.as_str() {
            "where" | "filter" => Op::Where(self.expr()?),
            "project" => Op::Project(self.assignments("project")?),
            "extend" => Op::Extend(self.assignments("extend")?),
            "project-away" => {
                let mut names = Vec::new();
                loop {
                    match self.next() {
                        Some(Tok::Word(w)) => names.push(w),
                        _ => return err("'project-away' takes a list of column names."),
                    }
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                Op::ProjectAway(names)
            }
            "limit" | "take" => match self.next() {
                Some(Tok::Num(n)) if n.as_u64().is_some() => {
                    Op::Limit(usize::try_from(n.as_u64().unwrap_or(0)).unwrap_or(usize::MAX))
                }
                _ => {
                    return err(format!(
                        "'{word}' takes a non-negative whole number of rows."
                    ));
                }
            },
            "order" | "sort" => {
                if !self.eat_word("by") {
                    return err(format!("Expected 'by' after '{word}'."));
                }
                let mut keys = Vec::new();
                loop {
                    let expr = self.operand()?;
                    let descending = if self.eat_word("asc") {
                        false
                    } else {
                        self.eat_word("desc");
                        true
                    };
                    // KQL's default: nulls last when descending, first when ascending.
                    let mut nulls_first = !descending;
                    if self.eat_word("nulls") {
                        nulls_first = if self.eat_word("first") {
                            true
                        } else if self.eat_word("last") {
                            false
                        } else {
                            return err("Expected 'first' or 'last' after 'nulls'.");
                        };
                    }
                    keys.push(SortKey {
                        expr,
                        descending,
                        nulls_first,
                    });
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                Op::Order(keys)
            }
            other => {
                return err(format!(
                    "The ARM simulator does not support the '{other}' operator; it supports {SUPPORTED_OPERATORS}."
                ));
            }
        };
        if !self.at_operator_end() {
            let token = self.peek().map(Tok::describe).unwrap_or_default();
            return err(format!(
                "Did not expect {token} in the '{word}' operator; the ARM simulator supports {SUPPORTED_OPERATORS}, \
                 with the predicates and functions listed in its documentation."
            ));
        }
        Ok(op)
    }

    /// `name = expr` or `expr` (named after its column), comma-separated.
    fn assignments(&mut self, operator: &str) -> Result<Vec<(String, Expr)>, QueryError> {
        let mut out = Vec::new();
        let mut unnamed = 0;
        loop {
            let named = matches!(
                (self.peek(), self.peek_at(1)),
                (Some(Tok::Word(_)), Some(Tok::Sym("=")))
            );
            if named {
                let Some(Tok::Word(name)) = self.next() else {
                    unreachable!("checked above")
                };
                self.at += 1;
                out.push((name, self.expr()?));
            } else {
                let expr = self.expr()?;
                let name = match &expr {
                    Expr::Column { name, keys } => std::iter::once(name.clone())
                        .chain(keys.iter().map(|k| match k {
                            Key::Field(f) => f.clone(),
                            Key::Index(i) => i.to_string(),
                        }))
                        .collect::<Vec<_>>()
                        .join("_"),
                    _ => {
                        unnamed += 1;
                        format!("Column{unnamed}")
                    }
                };
                out.push((name, expr));
            }
            if !self.eat_sym(",") {
                break;
            }
        }
        if out.is_empty() {
            return err(format!("'{operator}' needs at least one column."));
        }
        Ok(out)
    }

    fn expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and_expr()?;
        while self.eat_word("or") {
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.comparison()?;
        while self.eat_word("and") {
            let right = self.comparison()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let left = self.operand()?;
        let cmp = match self.peek() {
            Some(Tok::Sym(s)) => match *s {
                "==" => Some(Cmp::Eq),
                "!=" => Some(Cmp::Ne),
                "=~" => Some(Cmp::EqCi),
                "!~" => Some(Cmp::NeCi),
                "<" => Some(Cmp::Lt),
                "<=" => Some(Cmp::Le),
                ">" => Some(Cmp::Gt),
                ">=" => Some(Cmp::Ge),
                "=" => return err("'=' is not a comparison; use '==' (or '=~' to ignore case)."),
                "+" | "-" | "*" => {
                    return err(format!(
                        "The ARM simulator does not support arithmetic ('{s}')."
                    ));
                }
                _ => None,
            },
            Some(Tok::Word(w)) => {
                let w = w.clone();
                match w.as_str() {
                    "and" | "or" | "asc" | "desc" | "nulls" => None,
                    "in" | "!in" | "in~" | "!in~" => {
                        self.at += 1;
                        return self.in_list(left, &w);
                    }
                    _ => match text_operator(&w) {
                        Some(cmp) => Some(cmp),
                        None => {
                            return err(format!(
                                "The ARM simulator does not support the operator '{w}'; it supports ==, !=, =~, !~, \
                                 <, <=, >, >=, contains, has, startswith, endswith (with ! and _cs variants), \
                                 in, !in, in~ and !in~."
                            ));
                        }
                    },
                }
            }
            _ => None,
        };
        let Some(cmp) = cmp else {
            return Ok(left);
        };
        self.at += 1;
        let right = self.operand()?;
        Ok(Expr::Compare(cmp, Box::new(left), Box::new(right)))
    }

    fn in_list(&mut self, value: Expr, op: &str) -> Result<Expr, QueryError> {
        self.expect_sym("(", &format!("after '{op}'"))?;
        let mut list = Vec::new();
        if !self.eat_sym(")") {
            loop {
                list.push(self.operand()?);
                if self.eat_sym(")") {
                    break;
                }
                self.expect_sym(",", &format!("between the values of '{op}'"))?;
            }
        }
        Ok(Expr::In {
            value: Box::new(value),
            list,
            negated: op.starts_with('!'),
            case_insensitive: op.ends_with('~'),
        })
    }

    fn operand(&mut self) -> Result<Expr, QueryError> {
        match self.next() {
            Some(Tok::Sym("(")) => {
                let inner = self.expr()?;
                self.expect_sym(")", "to close '('")?;
                Ok(inner)
            }
            Some(Tok::Sym("-")) => match self.next() {
                Some(Tok::Num(n)) => {
                    let negated = if let Some(i) = n.as_i64() {
                        Number::from(-i)
                    } else {
                        Number::from_f64(-n.as_f64().unwrap_or(0.0)).unwrap_or(n)
                    };
                    Ok(Expr::Literal(Value::Number(negated)))
                }
                _ => err("The ARM simulator does not support arithmetic ('-')."),
            },
            Some(Tok::Str(s)) => Ok(Expr::Literal(Value::String(s))),
            Some(Tok::Num(n)) => Ok(Expr::Literal(Value::Number(n))),
            Some(Tok::Word(w)) if self.eat_sym("(") => {
                let func = match w.as_str() {
                    "tostring" => Func::ToString,
                    "not" => Func::Not,
                    "isempty" => Func::IsEmpty,
                    "isnotempty" => Func::IsNotEmpty,
                    "isnull" => Func::IsNull,
                    "isnotnull" => Func::IsNotNull,
                    _ => {
                        return err(format!(
                            "The ARM simulator does not support the function '{w}()'; it supports tostring(), \
                             not(), isempty(), isnotempty(), isnull() and isnotnull()."
                        ));
                    }
                };
                let argument = self.expr()?;
                self.expect_sym(")", &format!("to close '{w}('"))?;
                Ok(Expr::Call(func, Box::new(argument)))
            }
            Some(Tok::Word(w)) if w == "true" || w == "false" => {
                Ok(Expr::Literal(Value::Bool(w == "true")))
            }
            Some(Tok::Word(w)) if is_plain_name(&w) => {
                let keys = self.keys()?;
                Ok(Expr::Column { name: w, keys })
            }
            Some(other) => err(format!("Expected a value, found {}.", other.describe())),
            None => err("Expected a value, but the query ends."),
        }
    }

    /// `.name`, `['name']`, `.['name']`, `[0]` after a column.
    fn keys(&mut self) -> Result<Vec<Key>, QueryError> {
        let mut keys = Vec::new();
        loop {
            if self.eat_sym(".") {
                match self.next() {
                    Some(Tok::Word(w)) if is_plain_name(&w) => keys.push(Key::Field(w)),
                    Some(Tok::Sym("[")) => keys.push(self.bracket_key()?),
                    _ => return err("Expected a property name after '.'."),
                }
            } else if self.eat_sym("[") {
                keys.push(self.bracket_key()?);
            } else {
                return Ok(keys);
            }
        }
    }

    /// After `[`: `'name']`, `"name"]` or `0]`.
    fn bracket_key(&mut self) -> Result<Key, QueryError> {
        let key = match self.next() {
            Some(Tok::Str(s)) => Key::Field(s),
            Some(Tok::Num(n)) if n.as_i64().is_some() => Key::Index(n.as_i64().unwrap_or(0)),
            Some(Tok::Sym("-")) => match self.next() {
                Some(Tok::Num(n)) if n.as_i64().is_some() => Key::Index(-n.as_i64().unwrap_or(0)),
                _ => return err("Expected an index after '[-'."),
            },
            _ => return err("Expected a quoted property name or an index in '[…]'."),
        };
        self.expect_sym("]", "to close '['")?;
        Ok(key)
    }
}

/// A column or property name (not `!contains`, `in~`, `project-away`).
fn is_plain_name(word: &str) -> bool {
    word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn text_operator(word: &str) -> Option<Cmp> {
    let negated = word.starts_with('!');
    let base = word.trim_start_matches('!');
    let (base, case_sensitive) = match base.strip_suffix("_cs") {
        Some(base) => (base, true),
        None => (base, false),
    };
    let kind = match base {
        "contains" => TextOp::Contains,
        "has" => TextOp::Has,
        "startswith" => TextOp::StartsWith,
        "endswith" => TextOp::EndsWith,
        _ => return None,
    };
    Some(Cmp::Text {
        kind,
        negated,
        case_sensitive,
    })
}

// ---------------------------------------------------------------------------
// Evaluation

/// Runs `query` over `rows`, whose values are in the order of `columns`.
pub(crate) fn run(
    query: &Query,
    columns: &[&str],
    rows: Vec<Vec<Value>>,
) -> Result<Output, QueryError> {
    let mut out = Output {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows,
    };
    for op in &query.ops {
        let index: HashMap<String, usize> = out
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        match op {
            Op::Where(expr) => {
                check(expr, &index)?;
                out.rows
                    .retain(|row| eval(expr, &index, row) == Value::Bool(true));
            }
            Op::Project(items) => {
                for (_, expr) in items {
                    check(expr, &index)?;
                }
                out.rows = out
                    .rows
                    .iter()
                    .map(|row| {
                        items
                            .iter()
                            .map(|(_, expr)| eval(expr, &index, row))
                            .collect()
                    })
                    .collect();
                out.columns = items.iter().map(|(name, _)| name.clone()).collect();
            }
            Op::ProjectAway(names) => {
                for name in names {
                    if !index.contains_key(name) {
                        return unknown_column(name);
                    }
                }
                let keep: Vec<usize> = (0..out.columns.len())
                    .filter(|i| !names.contains(&out.columns[*i]))
                    .collect();
                out.rows = out
                    .rows
                    .iter()
                    .map(|row| keep.iter().map(|i| row[*i].clone()).collect())
                    .collect();
                out.columns = keep.iter().map(|i| out.columns[*i].clone()).collect();
            }
            Op::Extend(items) => {
                for (_, expr) in items {
                    check(expr, &index)?;
                }
                for row in &mut out.rows {
                    let values: Vec<Value> = items
                        .iter()
                        .map(|(_, expr)| eval(expr, &index, row))
                        .collect();
                    for ((name, _), value) in items.iter().zip(values) {
                        match index.get(name) {
                            Some(&i) => row[i] = value,
                            None => row.push(value),
                        }
                    }
                }
                for (name, _) in items {
                    if !index.contains_key(name) {
                        out.columns.push(name.clone());
                    }
                }
            }
            Op::Limit(n) => out.rows.truncate(*n),
            Op::Order(keys) => {
                for key in keys {
                    check(&key.expr, &index)?;
                }
                let mut keyed: Vec<(Vec<Value>, Vec<Value>)> = std::mem::take(&mut out.rows)
                    .into_iter()
                    .map(|row| {
                        let values = keys.iter().map(|k| eval(&k.expr, &index, &row)).collect();
                        (values, row)
                    })
                    .collect();
                keyed.sort_by(|(a, _), (b, _)| {
                    keys.iter()
                        .zip(a.iter().zip(b))
                        .map(|(key, (a, b))| sort_order(key, a, b))
                        .find(|o| *o != Ordering::Equal)
                        .unwrap_or(Ordering::Equal)
                });
                out.rows = keyed.into_iter().map(|(_, row)| row).collect();
            }
        }
    }
    Ok(out)
}

fn unknown_column<T>(name: &str) -> Result<T, QueryError> {
    err(format!(
        "Failed to resolve scalar expression named '{name}'. Column names are case-sensitive."
    ))
}

/// Every column `expr` names exists.
fn check(expr: &Expr, index: &HashMap<String, usize>) -> Result<(), QueryError> {
    match expr {
        Expr::Column { name, .. } if !index.contains_key(name) => unknown_column(name),
        Expr::Column { .. } | Expr::Literal(_) => Ok(()),
        Expr::Call(_, inner) => check(inner, index),
        Expr::Compare(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
            check(a, index)?;
            check(b, index)
        }
        Expr::In { value, list, .. } => {
            check(value, index)?;
            list.iter().try_for_each(|e| check(e, index))
        }
    }
}

fn eval(expr: &Expr, index: &HashMap<String, usize>, row: &[Value]) -> Value {
    match expr {
        Expr::Column { name, keys } => {
            let mut value = index
                .get(name)
                .and_then(|i| row.get(*i))
                .unwrap_or(&Value::Null);
            for key in keys {
                value = match (key, value) {
                    (Key::Field(f), Value::Object(map)) => map.get(f).unwrap_or(&Value::Null),
                    (Key::Index(i), Value::Array(items)) => {
                        let at = if *i < 0 {
                            items.len().checked_sub(i.unsigned_abs() as usize)
                        } else {
                            Some(*i as usize)
                        };
                        at.and_then(|at| items.get(at)).unwrap_or(&Value::Null)
                    }
                    _ => &Value::Null,
                };
            }
            value.clone()
        }
        Expr::Literal(value) => value.clone(),
        Expr::Call(func, inner) => {
            let value = eval(inner, index, row);
            match func {
                Func::ToString => match value {
                    Value::Null => Value::String(String::new()),
                    other => Value::String(text(&other)),
                },
                Func::Not => Value::Bool(value != Value::Bool(true)),
                Func::IsEmpty => Value::Bool(text(&value).is_empty()),
                Func::IsNotEmpty => Value::Bool(!text(&value).is_empty()),
                Func::IsNull => Value::Bool(value.is_null()),
                Func::IsNotNull => Value::Bool(!value.is_null()),
            }
        }
        Expr::And(a, b) => Value::Bool(
            eval(a, index, row) == Value::Bool(true) && eval(b, index, row) == Value::Bool(true),
        ),
        Expr::Or(a, b) => Value::Bool(
            eval(a, index, row) == Value::Bool(true) || eval(b, index, row) == Value::Bool(true),
        ),
        Expr::Compare(cmp, a, b) => {
            Value::Bool(compare(*cmp, &eval(a, index, row), &eval(b, index, row)))
        }
        Expr::In {
            value,
            list,
            negated,
            case_insensitive,
        } => {
            let value = eval(value, index, row);
            let found = list.iter().any(|item| {
                let item = eval(item, index, row);
                if *case_insensitive {
                    equal_ignoring_case(&value, &item)
                } else {
                    equal(&value, &item)
                }
            });
            Value::Bool(found != *negated)
        }
    }
}

/// A value as the string operators see it: a missing value is empty,
/// nested values are their JSON text.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => text(a) == text(b),
    }
}

fn equal_ignoring_case(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => text(a).to_lowercase() == text(b).to_lowercase(),
    }
}

fn compare(cmp: Cmp, a: &Value, b: &Value) -> bool {
    let ordered = |test: fn(Ordering) -> bool| match (number(a), number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).is_some_and(test),
        _ => false,
    };
    match cmp {
        Cmp::Eq => equal(a, b),
        Cmp::Ne => !equal(a, b),
        Cmp::EqCi => equal_ignoring_case(a, b),
        Cmp::NeCi => !equal_ignoring_case(a, b),
        Cmp::Lt => ordered(|o| o == Ordering::Less),
        Cmp::Le => ordered(|o| o != Ordering::Greater),
        Cmp::Gt => ordered(|o| o == Ordering::Greater),
        Cmp::Ge => ordered(|o| o != Ordering::Less),
        Cmp::Text {
            kind,
            negated,
            case_sensitive,
        } => {
            let (mut hay, mut needle) = (text(a), text(b));
            if !case_sensitive {
                hay = hay.to_lowercase();
                needle = needle.to_lowercase();
            }
            let found = match kind {
                TextOp::Contains => hay.contains(&needle),
                TextOp::StartsWith => hay.starts_with(&needle),
                TextOp::EndsWith => hay.ends_with(&needle),
                TextOp::Has => has_term(&hay, &needle),
            };
            found != negated
        }
    }
}

/// KQL's `has`: `needle` occurs in `hay` as whole terms, i.e. not preceded
/// or followed by a letter or digit.
fn has_term(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let alnum = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut from = 0;
    while let Some(found) = hay[from..].find(needle) {
        let start = from + found;
        let end = start + needle.len();
        let before = hay[..start].chars().next_back();
        let after = hay[end..].chars().next();
        let starts_term = !alnum(needle.chars().next()) || !alnum(before);
        let ends_term = !alnum(needle.chars().next_back()) || !alnum(after);
        if starts_term && ends_term {
            return true;
        }
        from = start + hay[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

fn sort_order(key: &SortKey, a: &Value, b: &Value) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => return Ordering::Equal,
        (true, false) => {
            return if key.nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        (false, true) => {
            return if key.nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        _ => {}
    }
    let order = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => text(a).cmp(&text(b)),
    };
    if key.descending {
        order.reverse()
    } else {
        order
    }
}

/// The type ARG's table format names for a column: the schema's for a
/// table column, else from the first value that is not null.
pub(crate) fn column_type(name: &str, mut values: impl Iterator<Item = Value>) -> &'static str {
    if let Some((_, ty)) = COLUMNS.iter().find(|(column, _)| *column == name) {
        return ty;
    }
    match values.find(|v| !v.is_null()) {
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(n)) if n.is_f64() => "real",
        Some(Value::Number(_)) => "integer",
        Some(Value::Array(_) | Value::Object(_)) => "object",
        Some(Value::String(_) | Value::Null) | None => "string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Three resources with ARG's columns.
    fn rows() -> Vec<Vec<Value>> {
        let row = |id: &str,
                   name: &str,
                   ty: &str,
                   rg: &str,
                   location: &str,
                   tags: Value,
                   props: Value| {
            let mut values = vec![Value::Null; COLUMNS.len()];
            values[0] = json!(id);
            values[1] = json!(name);
            values[2] = json!(ty);
            values[3] = json!("tenant");
            values[4] = json!("");
            values[5] = json!(location);
            values[6] = json!(rg);
            values[7] = json!("sub");
            values[8] = json!("");
            values[11] = props;
            values[12] = tags;
            values[14] = json!(["1", "2"]);
            values
        };
        vec![
            row(
                "/subscriptions/sub/resourceGroups/Dev-Web/providers/Microsoft.Compute/virtualMachines/web-01",
                "web-01",
                "microsoft.compute/virtualmachines",
                "dev-web",
                "westeurope",
                json!({"env": "dev", "role": "web"}),
                json!({"hardwareProfile": {"vmSize": "Standard_B2s"}, "cores": 2, "dotted.key": "x"}),
            ),
            row(
                "/subscriptions/sub/resourceGroups/security/providers/Microsoft.Storage/storageAccounts/prodlogs01",
                "prodlogs01",
                "microsoft.storage/storageaccounts",
                "security",
                "westeurope",
                json!({"env": "prod", "team": "sec'ops"}),
                json!({"accessTier": "Hot", "cores": 8}),
            ),
            row(
                "/subscriptions/sub/resourceGroups/prod-web/providers/Microsoft.Compute/virtualMachines/prod-web-01",
                "prod-web-01",
                "microsoft.compute/virtualmachines",
                "prod-web",
                "japaneast",
                json!({}),
                json!({"hardwareProfile": {"vmSize": "Standard_D4s_v5"}, "cores": 4}),
            ),
        ]
    }

    fn columns() -> Vec<&'static str> {
        COLUMNS.iter().map(|(c, _)| *c).collect()
    }

    fn query(text: &str) -> Result<Output, QueryError> {
        run(&parse(text)?, &columns(), rows())
    }

    /// The `name` column of the rows `text` returns.
    fn names(text: &str) -> Vec<String> {
        let out = query(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let at = out
            .columns
            .iter()
            .position(|c| c == "name")
            .expect("a name column");
        out.rows
            .iter()
            .map(|r| r[at].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn refused(text: &str) -> String {
        match query(text) {
            Ok(out) => panic!("{text}: accepted, {out:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn tables_and_default_table() {
        assert_eq!(parse("resources").unwrap().table, Table::Resources);
        assert_eq!(
            parse("Resources | limit 1").unwrap().table,
            Table::Resources
        );
        assert_eq!(
            parse("ResourceContainers").unwrap().table,
            Table::ResourceContainers
        );
        assert_eq!(
            parse("authorizationresources | where type =~ 'x'")
                .unwrap()
                .table,
            Table::AuthorizationResources
        );
        assert_eq!(
            parse("where name == 'web-01'").unwrap().table,
            Table::Resources
        );
        assert_eq!(names("where name == 'web-01'"), ["web-01"]);
        assert_eq!(names("resources"), ["web-01", "prodlogs01", "prod-web-01"]);
        assert!(refused("advisorresources | limit 1").contains("'advisorresources' is not served"));
    }

    #[test]
    fn equality_operators_and_case() {
        assert_eq!(
            names("resources | where type == 'microsoft.compute/virtualmachines'"),
            ["web-01", "prod-web-01"]
        );
        assert!(names("resources | where type == 'Microsoft.Compute/virtualMachines'").is_empty());
        assert_eq!(
            names("resources | where type =~ 'Microsoft.Compute/virtualMachines'"),
            ["web-01", "prod-web-01"]
        );
        assert_eq!(
            names("resources | where name != 'web-01'"),
            ["prodlogs01", "prod-web-01"]
        );
        assert_eq!(
            names("resources | where name !~ 'WEB-01'"),
            ["prodlogs01", "prod-web-01"]
        );
        assert_eq!(
            names("resources | where properties.cores == 8"),
            ["prodlogs01"]
        );
        assert_eq!(
            names("resources | where properties.cores == '8'"),
            ["prodlogs01"]
        );
    }

    #[test]
    fn numeric_comparisons() {
        assert_eq!(
            names("resources | where properties.cores > 2"),
            ["prodlogs01", "prod-web-01"]
        );
        assert_eq!(
            names("resources | where properties.cores >= 4 and properties.cores <= 4"),
            ["prod-web-01"]
        );
        assert_eq!(names("resources | where properties.cores < 3"), ["web-01"]);
        assert_eq!(names("resources | where properties.cores > -1").len(), 3);
        // Not numbers: never ordered.
        assert!(names("resources | where name > 'a'").is_empty());
    }

    #[test]
    fn text_operators() {
        assert_eq!(
            names("resources | where name contains 'WEB'"),
            ["web-01", "prod-web-01"]
        );
        assert!(names("resources | where name contains_cs 'WEB'").is_empty());
        assert_eq!(
            names("resources | where name !contains 'web'"),
            ["prodlogs01"]
        );
        assert_eq!(names("resources | where name !contains_cs 'WEB'").len(), 3);
        assert_eq!(
            names("resources | where name startswith 'PROD'"),
            ["prodlogs01", "prod-web-01"]
        );
        assert_eq!(
            names("resources | where name !startswith 'prod'"),
            ["web-01"]
        );
        assert!(names("resources | where name startswith_cs 'PROD'").is_empty());
        assert_eq!(
            names("resources | where name endswith '-01'"),
            ["web-01", "prod-web-01"]
        );
        assert_eq!(names("resources | where name !endswith '01'").len(), 0);
        // id contains, as azmcp's role assignment listing filters.
        assert_eq!(
            names("resources | where id contains '/resourcegroups/dev-web/'"),
            ["web-01"]
        );
    }

    #[test]
    fn has_matches_whole_terms() {
        assert_eq!(
            names("resources | where name has 'web'"),
            ["web-01", "prod-web-01"]
        );
        assert_eq!(names("resources | where name has 'PROD'"), ["prod-web-01"]);
        assert!(names("resources | where name has 'we'").is_empty());
        assert_eq!(names("resources | where name !has 'web'"), ["prodlogs01"]);
        assert!(names("resources | where name has_cs 'WEB'").is_empty());
        assert_eq!(
            names("resources | where name has 'web-01'"),
            ["web-01", "prod-web-01"]
        );
        assert!(has_term("a.b-c", "b"));
        assert!(has_term("abc", ""));
        assert!(!has_term("abc", "b"));
        assert!(has_term("ünïcode term", "term"));
    }

    #[test]
    fn in_lists() {
        assert_eq!(
            names("resources | where resourceGroup in ('dev-web', 'security')"),
            ["web-01", "prodlogs01"]
        );
        assert_eq!(
            names("resources | where resourceGroup in ('DEV-WEB')"),
            Vec::<String>::new()
        );
        assert_eq!(
            names("resources | where resourceGroup in~ ('DEV-WEB', \"Prod-Web\")"),
            ["web-01", "prod-web-01"]
        );
        assert_eq!(
            names("resources | where resourceGroup !in ('dev-web')"),
            ["prodlogs01", "prod-web-01"]
        );
        assert_eq!(
            names("resources | where resourceGroup !in~ ('DEV-WEB', 'SECURITY')"),
            ["prod-web-01"]
        );
        assert_eq!(
            names("resources | where properties.cores in (2, 4)"),
            ["web-01", "prod-web-01"]
        );
        assert!(names("resources | where name in ()").is_empty());
    }

    #[test]
    fn nested_values() {
        assert_eq!(names("resources | where tags['env'] == 'dev'"), ["web-01"]);
        assert_eq!(
            names("resources | where tags[\"env\"] =~ 'PROD'"),
            ["prodlogs01"]
        );
        assert_eq!(
            names("resources | where tags.env == 'prod'"),
            ["prodlogs01"]
        );
        assert_eq!(
            names("resources | where properties.hardwareProfile.vmSize =~ 'standard_b2s'"),
            ["web-01"]
        );
        assert_eq!(
            names("resources | where properties.['dotted.key'] == 'x'"),
            ["web-01"]
        );
        assert_eq!(names("resources | where zones[0] == '1'").len(), 3);
        assert_eq!(names("resources | where zones[-1] == '2'").len(), 3);
        // Missing values are empty strings: != matches them, == '' too.
        assert_eq!(
            names("resources | where tags.env != 'prod'"),
            ["web-01", "prod-web-01"]
        );
        assert_eq!(names("resources | where tags.env == ''"), ["prod-web-01"]);
        // Keys are case-sensitive, as in KQL.
        assert!(names("resources | where tags.ENV == 'dev'").is_empty());
        // tostring() and the emptiness functions.
        assert_eq!(
            names("resources | where tostring(tags.team) =~ \"SEC'OPS\""),
            ["prodlogs01"]
        );
        assert_eq!(
            names("resources | where isempty(tags.env)"),
            ["prod-web-01"]
        );
        assert_eq!(names("resources | where isnotempty(tags.env)").len(), 2);
        assert_eq!(names("resources | where isnull(tags.env)"), ["prod-web-01"]);
        assert_eq!(
            names("resources | where isnotnull(properties.accessTier)"),
            ["prodlogs01"]
        );
        assert_eq!(
            names("resources | where not(name == 'web-01')"),
            ["prodlogs01", "prod-web-01"]
        );
    }

    #[test]
    fn precedence_and_parentheses() {
        // `and` binds tighter than `or`.
        assert_eq!(
            names(
                "resources | where name == 'prodlogs01' or name == 'web-01' and location == 'japaneast'"
            ),
            ["prodlogs01"]
        );
        assert_eq!(
            names(
                "resources | where (name == 'prodlogs01' or name == 'web-01') and location == 'westeurope'"
            ),
            ["web-01", "prodlogs01"]
        );
        assert_eq!(
            names(
                "resources | where type =~ 'microsoft.compute/virtualmachines' and (tags.env == 'dev' or location == 'japaneast')"
            ),
            ["web-01", "prod-web-01"]
        );
        assert_eq!(names("resources | where ((name == 'web-01'))"), ["web-01"]);
        // Several where clauses in a row.
        assert_eq!(
            names("resources | where location == 'westeurope' | where name has 'web'"),
            ["web-01"]
        );
    }

    #[test]
    fn quoting() {
        // A doubled quote stands for one (as azmcp escapes), backslash escapes too.
        assert_eq!(
            names("resources | where tags.team == 'sec''ops'"),
            ["prodlogs01"]
        );
        assert_eq!(
            names("resources | where tags.team == 'sec\\'ops'"),
            ["prodlogs01"]
        );
        assert_eq!(
            names("resources | where tags.team == \"sec'ops\""),
            ["prodlogs01"]
        );
        assert_eq!(
            tokenize(r#""a""b" @'c''d' @"e\f" 'g\\h'"#).unwrap(),
            vec![
                Tok::Str("a\"b".into()),
                Tok::Str("c'd".into()),
                Tok::Str("e\\f".into()),
                Tok::Str("g\\h".into()),
            ]
        );
        assert!(refused("resources | where name == 'open").contains("not terminated"));
        assert!(refused("resources | where name == 'a\\q'").contains("escape"));
        // A comment is ignored.
        assert_eq!(
            names("resources // all\n| where name == 'web-01'"),
            ["web-01"]
        );
    }

    #[test]
    fn limit_and_take() {
        assert_eq!(names("resources | limit 2"), ["web-01", "prodlogs01"]);
        assert_eq!(names("resources | take 1"), ["web-01"]);
        assert!(names("resources | limit 0").is_empty());
        assert_eq!(names("resources | limit 50").len(), 3);
        assert_eq!(
            names("resources | where type =~ 'Microsoft.Compute/virtualMachines' | limit 1"),
            ["web-01"]
        );
        assert!(refused("resources | limit -1").contains("whole number"));
        assert!(refused("resources | take x").contains("whole number"));
    }

    #[test]
    fn project_and_extend() {
        let out = query("resources | where name == 'web-01' | project name, env = tags.env, tags.role, size = properties.hardwareProfile.vmSize").unwrap();
        assert_eq!(out.columns, ["name", "env", "tags_role", "size"]);
        assert_eq!(
            out.rows,
            vec![vec![
                json!("web-01"),
                json!("dev"),
                json!("web"),
                json!("Standard_B2s")
            ]]
        );

        let out = query("resources | extend env = tags['env'], name = 'renamed' | where env == 'prod' | project name, env").unwrap();
        assert_eq!(out.columns, ["name", "env"]);
        assert_eq!(out.rows, vec![vec![json!("renamed"), json!("prod")]]);
        // extend adds at the end, keeping the table's columns.
        let out = query("resources | extend x = 1 | limit 1").unwrap();
        assert_eq!(out.columns.len(), COLUMNS.len() + 1);
        assert_eq!(out.columns.last().unwrap(), "x");
        assert_eq!(out.rows[0].last().unwrap(), &json!(1));

        let out = query("resources | project-away properties, tags | limit 1").unwrap();
        assert_eq!(out.columns.len(), COLUMNS.len() - 2);
        assert!(!out.columns.contains(&"tags".to_owned()));
        // A projected column is gone for later operators.
        assert!(refused("resources | project name | where location == 'x'").contains("'location'"));
        let out = query("resources | project id, literal = 'x', 2 | limit 1").unwrap();
        assert_eq!(out.columns, ["id", "literal", "Column1"]);
    }

    #[test]
    fn order_by() {
        assert_eq!(
            names("resources | order by name asc"),
            ["prod-web-01", "prodlogs01", "web-01"]
        );
        // KQL's default is descending.
        assert_eq!(
            names("resources | sort by name"),
            ["web-01", "prodlogs01", "prod-web-01"]
        );
        assert_eq!(
            names("resources | order by properties.cores desc"),
            ["prodlogs01", "prod-web-01", "web-01"]
        );
        assert_eq!(
            names("resources | order by location asc, name desc"),
            ["prod-web-01", "web-01", "prodlogs01"]
        );
        // Nulls: first when ascending unless told otherwise.
        assert_eq!(
            names("resources | order by properties.accessTier asc"),
            ["web-01", "prod-web-01", "prodlogs01"]
        );
        assert_eq!(
            names("resources | order by properties.accessTier asc nulls last"),
            ["prodlogs01", "web-01", "prod-web-01"]
        );
    }

    #[test]
    fn unknown_columns_are_refused() {
        assert!(refused("resources | where resourcegroup == 'x'").contains("'resourcegroup'"));
        assert!(refused("resources | project nope").contains("'nope'"));
        assert!(refused("resources | project-away nope").contains("'nope'"));
        assert!(refused("resources | order by nope").contains("'nope'"));
    }

    #[test]
    fn unsupported_parts_are_named() {
        for (text, part) in [
            (
                "resources | summarize count() by type",
                "'summarize' operator",
            ),
            (
                "resources | join (resourcecontainers) on subscriptionId",
                "'join' operator",
            ),
            ("resources | mv-expand tags", "'mv-expand' operator"),
            ("resources | union resourcecontainers", "'union' operator"),
            ("resources | distinct type", "'distinct' operator"),
            ("resources | count", "'count' operator"),
            ("resources | top 5 by name", "'top' operator"),
            (
                "resources | where tolower(name) == 'x'",
                "function 'tolower()'",
            ),
            (
                "resources | where name matches regex 'x'",
                "operator 'matches'",
            ),
            ("resources | where name has_any ('x')", "operator 'has_any'"),
            (
                "resources | where name between (1 .. 2)",
                "operator 'between'",
            ),
            (
                "resources | where properties.cores + 1 > 2",
                "arithmetic ('+')",
            ),
            (
                "resources | where properties.t > datetime(2024-01-01)",
                "function 'datetime()'",
            ),
            ("let x = 1; resources", "'let' statements"),
            ("resources | where name = 'x'", "use '=='"),
            ("resources | where", "Expected a value"),
            (
                "resources | where name == 'a' 'b'",
                "Did not expect the string 'b'",
            ),
            ("resources | order name", "Expected 'by'"),
            ("resources | where (name == 'a'", "to close '('"),
            ("resources | where name in 'a'", "after 'in'"),
            ("resources where name == 'a'", "Expected '|'"),
            ("resources | where name == 'a' | ", "query ends"),
            ("resources | where name == #", "character '#'"),
            ("", "empty"),
        ] {
            let message = refused(text);
            assert!(message.contains(part), "{text}: {message}");
        }
    }

    #[test]
    fn column_types() {
        assert_eq!(column_type("tags", std::iter::empty()), "object");
        assert_eq!(column_type("id", std::iter::empty()), "string");
        assert_eq!(
            column_type("x", [Value::Null, json!(1)].into_iter()),
            "integer"
        );
        assert_eq!(column_type("x", [json!(1.5)].into_iter()), "real");
        assert_eq!(column_type("x", [json!(true)].into_iter()), "boolean");
        assert_eq!(column_type("x", [json!({})].into_iter()), "object");
        assert_eq!(column_type("x", std::iter::empty()), "string");
    }
}
