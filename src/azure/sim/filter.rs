//! The small subset of OData `$filter` that ARM list operations accept:
//! clauses joined by `and`, each either `field op 'value'` (`eq`, `ne`,
//! `ge`, `gt`, `le`, `lt`) or a function call such as `atScope()`,
//! `assignedTo('guid')` or `substringof('web', name)`. `or`, `not` and
//! nesting are refused, as most ARM providers refuse them.

/// One clause of a `$filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Clause {
    /// `field op value`; `field` and `op` lower-cased, `value` unquoted.
    Compare {
        field: String,
        op: String,
        value: String,
    },
    /// `name(args…)`; `name` lower-cased, string arguments unquoted.
    Call { name: String, args: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
    Comma,
}

/// Parses `filter`; the error is a message for an ARM `400`.
pub(crate) fn parse(filter: &str) -> Result<Vec<Clause>, String> {
    let tokens = tokenize(filter)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    loop {
        let Some(Token::Word(head)) = tokens.get(i) else {
            return Err(format!(
                "invalid $filter {filter:?}: expected a field or function name"
            ));
        };
        let head_lc = head.to_ascii_lowercase();
        if matches!(head_lc.as_str(), "or" | "not") {
            return Err(format!(
                "invalid $filter {filter:?}: '{head}' is not supported"
            ));
        }
        i += 1;
        if tokens.get(i) == Some(&Token::Open) {
            i += 1;
            let mut args = Vec::new();
            loop {
                match tokens.get(i) {
                    Some(Token::Close) => {
                        i += 1;
                        break;
                    }
                    Some(Token::Text(value)) | Some(Token::Word(value)) => {
                        args.push(value.clone());
                        i += 1;
                        match tokens.get(i) {
                            Some(Token::Comma) => i += 1,
                            Some(Token::Close) => {}
                            _ => {
                                return Err(format!(
                                    "invalid $filter {filter:?}: expected ',' or ')' in {head}(…)"
                                ));
                            }
                        }
                    }
                    _ => {
                        return Err(format!(
                            "invalid $filter {filter:?}: unterminated call {head}(…)"
                        ));
                    }
                }
            }
            clauses.push(Clause::Call {
                name: head_lc,
                args,
            });
        } else {
            let op = match tokens.get(i) {
                Some(Token::Word(op))
                    if matches!(
                        op.to_ascii_lowercase().as_str(),
                        "eq" | "ne" | "ge" | "gt" | "le" | "lt"
                    ) =>
                {
                    op.to_ascii_lowercase()
                }
                _ => {
                    return Err(format!(
                        "invalid $filter {filter:?}: expected an operator (eq, ne, ge, gt, le, lt) after '{head}'"
                    ));
                }
            };
            i += 1;
            let value = match tokens.get(i) {
                Some(Token::Text(value)) | Some(Token::Word(value)) => value.clone(),
                _ => {
                    return Err(format!(
                        "invalid $filter {filter:?}: expected a value after '{head} {op}'"
                    ));
                }
            };
            i += 1;
            clauses.push(Clause::Compare {
                field: head_lc,
                op,
                value,
            });
        }
        match tokens.get(i) {
            None => return Ok(clauses),
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("and") => i += 1,
            Some(_) => {
                return Err(format!(
                    "invalid $filter {filter:?}: clauses must be joined with 'and'"
                ));
            }
        }
    }
}

fn tokenize(filter: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = filter.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '\'' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            text.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => text.push(c),
                        None => {
                            return Err(format!("invalid $filter {filter:?}: unterminated string"));
                        }
                    }
                }
                tokens.push(Token::Text(text));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '\'') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(field: &str, op: &str, value: &str) -> Clause {
        Clause::Compare {
            field: field.into(),
            op: op.into(),
            value: value.into(),
        }
    }

    #[test]
    fn parses_comparisons_and_calls() {
        assert_eq!(
            parse("resourceType eq 'Microsoft.Compute/virtualMachines'").unwrap(),
            vec![cmp(
                "resourcetype",
                "eq",
                "Microsoft.Compute/virtualMachines"
            )]
        );
        assert_eq!(
            parse("eventTimestamp ge '2024-01-01T00:00:00Z' AND resourceGroupName eq 'it''s'")
                .unwrap(),
            vec![
                cmp("eventtimestamp", "ge", "2024-01-01T00:00:00Z"),
                cmp("resourcegroupname", "eq", "it's"),
            ]
        );
        assert_eq!(
            parse("atScope() and assignedTo('abc')").unwrap(),
            vec![
                Clause::Call {
                    name: "atscope".into(),
                    args: vec![]
                },
                Clause::Call {
                    name: "assignedto".into(),
                    args: vec!["abc".into()]
                },
            ]
        );
        assert_eq!(
            parse("substringof('web', name)").unwrap(),
            vec![Clause::Call {
                name: "substringof".into(),
                args: vec!["web".into(), "name".into()]
            }]
        );
    }

    #[test]
    fn refuses_what_arm_refuses() {
        assert!(parse("").is_err());
        assert!(parse("a eq 'x' or b eq 'y'").is_err());
        assert!(parse("a eq").is_err());
        assert!(parse("a like 'x'").is_err());
        assert!(parse("a eq 'x").is_err());
        assert!(parse("f('x'").is_err());
    }
}
