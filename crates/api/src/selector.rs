//! Label and field selectors with the API server's syntax and meaning
//! (apimachinery's `labels.Parse` and `fields.ParseSelector`), for
//! `labelSelector=` / `fieldSelector=` on lists and watches and the CLI's
//! `-l` / `--field-selector`.
//!
//! Label selectors: requirements joined by `,`, each one of `key`,
//! `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`,
//! `key notin (a,b)`, `key > 1`, `key < 1`. `!=` and `notin` also match
//! objects without the label. An empty selector matches everything.
//! Field selectors: terms `field=value`, `field==value`, `field!=value`
//! joined by `,` (`\` escapes `,`, `=`, `!` and `\` in a value).

use std::collections::BTreeMap;

/// An operator of a label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Exists,
    DoesNotExist,
    Equals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    /// Sorted values (one for `=`, `!=`, `>`, `<`).
    pub values: Vec<String>,
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
            Op::Equals | Op::In => v.is_some_and(|v| self.values.contains(v)),
            Op::NotEquals | Op::NotIn => v.is_none_or(|v| !self.values.contains(v)),
            Op::GreaterThan | Op::LessThan => {
                let (Some(v), Some(bound)) = (
                    v.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Whether `labels` (None = no labels) satisfy every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// A `metav1.LabelSelector` (matchLabels and matchExpressions) as a
    /// selector, as apimachinery's `LabelSelectorAsSelector`: an empty one
    /// selects everything. The error names the bad expression.
    pub fn from_meta(
        sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement {
                key: k.clone(),
                op: Op::Equals,
                values: vec![v.clone()],
            });
        }
        for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
            let mut values = e.values.clone().unwrap_or_default();
            values.sort();
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(format!(
                        "matchExpressions[{i}].operator: Unsupported value: {other:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
                    ))
                }
            };
            match op {
                Op::In | Op::NotIn if values.is_empty() => {
                    return Err(format!(
                        "matchExpressions[{i}].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
                    ))
                }
                Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                    return Err(format!(
                        "matchExpressions[{i}].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                    ))
                }
                _ => {}
            }
            requirements.push(Requirement {
                key: e.key.clone(),
                op,
                values,
            });
        }
        Ok(LabelSelector { requirements })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    In,
    NotIn,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
}

impl Tok {
    fn literal(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Not => "!".into(),
            Tok::Eq => "=".into(),
            Tok::DoubleEq => "==".into(),
            Tok::NotEq => "!=".into(),
            Tok::In => "in".into(),
            Tok::NotIn => "notin".into(),
            Tok::Gt => ">".into(),
            Tok::Lt => "<".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::Comma => ",".into(),
            Tok::End => String::new(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '>' | '<' | '(' | ')' | ',')
}

/// apimachinery's lexer: special symbols, identifiers (runs of other
/// non-space characters; `in` and `notin` are keywords).
fn lex(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let two = chars.get(i + 1).copied();
            let (tok, n) = match (c, two) {
                ('!', Some('=')) => (Tok::NotEq, 2),
                ('=', Some('=')) => (Tok::DoubleEq, 2),
                ('!', _) => (Tok::Not, 1),
                ('=', _) => (Tok::Eq, 1),
                ('>', _) => (Tok::Gt, 1),
                ('<', _) => (Tok::Lt, 1),
                ('(', _) => (Tok::Open, 1),
                (')', _) => (Tok::Close, 1),
                _ => (Tok::Comma, 1),
            };
            out.push(tok);
            i += n;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        out.push(match word.as_str() {
            "in" => Tok::In,
            "notin" => Tok::NotIn,
            _ => Tok::Ident(word),
        });
    }
    out.push(Tok::End);
    out
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A qualified name's name part, or a label value (`allow_empty`): at
/// most 63 characters, alphanumeric at both ends, `-`, `_`, `.` inside.
fn name_part_error(s: &str, allow_empty: bool) -> Option<String> {
    if s.is_empty() {
        return (!allow_empty).then(|| "name part must be non-empty".to_string());
    }
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = s
        .chars()
        .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum);
    (!ok).then(|| {
        if allow_empty {
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string()
        } else {
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string()
        }
    })
}

fn dns_subdomain_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn validate_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if !dns_subdomain_ok(p) {
            errs.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
        }
    }
    if let Some(e) = name_part_error(name, false) {
        errs.push(e);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("key: Invalid value: \"{k}\": {}", errs.join(", ")))
    }
}

fn validate_value(i: usize, v: &str) -> Result<(), String> {
    match name_part_error(v, true) {
        None => Ok(()),
        Some(e) => Err(format!("values[{i}][{v}]: Invalid value: \"{v}\": {e}")),
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).unwrap_or(&Tok::End)
    }
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }
    /// The next token where a key or value is expected: `in` and
    /// `notin` are plain identifiers there.
    fn next_value(&mut self) -> Tok {
        match self.next() {
            Tok::In => Tok::Ident("in".into()),
            Tok::NotIn => Tok::Ident("notin".into()),
            t => t,
        }
    }
    fn peek_value(&self) -> Tok {
        match self.peek() {
            Tok::In => Tok::Ident("in".into()),
            Tok::NotIn => Tok::Ident("notin".into()),
            t => t.clone(),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut op = None;
        if *self.peek() == Tok::Not {
            self.next();
            op = Some(Op::DoesNotExist);
        }
        let key = match self.next_value() {
            Tok::Ident(k) => k,
            t => return Err(format!("found '{}', expected: identifier", t.literal())),
        };
        validate_key(&key).map_err(|e| format!("unable to parse requirement: {e}"))?;
        if let Some(op) = op {
            return match self.peek() {
                Tok::Comma | Tok::End => Ok(Requirement {
                    key,
                    op,
                    values: Vec::new(),
                }),
                t => Err(format!(
                    "found '{}', expected: ',' or 'end of string'",
                    t.literal()
                )),
            };
        }
        let op = match self.peek() {
            Tok::Comma | Tok::End => {
                return Ok(Requirement {
                    key,
                    op: Op::Exists,
                    values: Vec::new(),
                })
            }
            Tok::Eq | Tok::DoubleEq => Op::Equals,
            Tok::NotEq => Op::NotEquals,
            Tok::In => Op::In,
            Tok::NotIn => Op::NotIn,
            Tok::Gt => Op::GreaterThan,
            Tok::Lt => Op::LessThan,
            t => {
                return Err(format!(
                    "found '{}', expected: {}",
                    t.literal(),
                    "in, notin, =, ==, !=, gt, lt"
                ))
            }
        };
        self.next();
        let mut values = match op {
            Op::In | Op::NotIn => self.value_set()?,
            _ => match self.peek_value() {
                Tok::Ident(v) => {
                    self.next();
                    vec![v]
                }
                // `key=` selects the empty value.
                Tok::Comma | Tok::End => vec![String::new()],
                t => return Err(format!("found '{}', expected: identifier", t.literal())),
            },
        };
        if matches!(op, Op::GreaterThan | Op::LessThan) {
            let v = values.first().cloned().unwrap_or_default();
            if v.parse::<i64>().is_err() {
                return Err(format!("unable to parse requirement: values[0]: Invalid value: \"{v}\": for 'gt', 'lt' operators, the value must be an integer"));
            }
        } else {
            for (i, v) in values.iter().enumerate() {
                validate_value(i, v).map_err(|e| format!("unable to parse requirement: {e}"))?;
            }
        }
        if matches!(op, Op::In | Op::NotIn) && values.is_empty() {
            return Err("unable to parse requirement: values: Required value: for 'in', 'notin' operators, values set can't be empty".into());
        }
        values.sort();
        values.dedup();
        Ok(Requirement { key, op, values })
    }

    /// `( a, b )`; empty members count as "" as in apimachinery.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Tok::Open => {}
            t => return Err(format!("found '{}', expected: '('", t.literal())),
        }
        let mut values = Vec::new();
        if *self.peek() == Tok::Close {
            self.next();
            return Ok(values);
        }
        loop {
            match self.next_value() {
                Tok::Ident(v) => {
                    values.push(v);
                    match self.next() {
                        Tok::Comma => continue,
                        Tok::Close => return Ok(values),
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Tok::Comma => values.push(String::new()),
                Tok::Close => {
                    values.push(String::new());
                    return Ok(values);
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        t.literal()
                    ))
                }
            }
        }
    }
}

/// Parse a label selector (`labels.Parse`). The error is the API
/// server's text.
pub fn parse_label_selector(s: &str) -> Result<LabelSelector, String> {
    let mut p = Parser {
        toks: lex(s),
        pos: 0,
    };
    let mut requirements = Vec::new();
    if *p.peek() == Tok::End {
        return Ok(LabelSelector { requirements });
    }
    loop {
        requirements.push(p.requirement()?);
        match p.next() {
            Tok::End => break,
            Tok::Comma => {
                if *p.peek() == Tok::End {
                    return Err("found '', expected: identifier after ','".into());
                }
            }
            t => {
                return Err(format!(
                    "found '{}', expected: ',' or 'end of string'",
                    t.literal()
                ))
            }
        }
    }
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(LabelSelector { requirements })
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    /// `!=` rather than `=`/`==`.
    pub not: bool,
    pub value: String,
}

/// A parsed field selector: all terms must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Whether the fields `get` returns satisfy every term.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let v = get(&t.field).unwrap_or_default();
            (v == t.value) != t.not
        })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Terms naming a field `supported` does not list: the API server's
    /// `field label not supported: X`.
    pub fn check_fields(&self, supported: &[&str]) -> Result<(), String> {
        match self
            .terms
            .iter()
            .find(|t| !supported.contains(&t.field.as_str()))
        {
            Some(t) => Err(format!("field label not supported: {}", t.field)),
            None => Ok(()),
        }
    }
}

/// Split at unescaped `sep`.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push('\\');
            cur.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if esc {
        cur.push('\\');
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(e @ ('\\' | ',' | '=' | '!')) => out.push(e),
                Some(e) => return Err(format!("invalid field selector value escape: \\{e}")),
                None => return Err("invalid field selector value: trailing \\".into()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Parse a field selector (`fields.ParseSelector`).
pub fn parse_field_selector(s: &str) -> Result<FieldSelector, String> {
    let mut terms = Vec::new();
    if s.trim().is_empty() {
        return Ok(FieldSelector { terms });
    }
    for part in split_unescaped(s, ',') {
        if part.is_empty() {
            continue;
        }
        // The first unescaped operator: `!=`, `==`, `=`.
        let chars: Vec<char> = part.chars().collect();
        let mut found = None;
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '\\' => i += 1,
                '!' if chars.get(i + 1) == Some(&'=') => {
                    found = Some((i, 2, true));
                    break;
                }
                '=' if chars.get(i + 1) == Some(&'=') => {
                    found = Some((i, 2, false));
                    break;
                }
                '=' => {
                    found = Some((i, 1, false));
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let Some((at, len, not)) = found else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{part}'"
            ));
        };
        let field: String = chars[..at].iter().collect();
        let value: String = chars[at + len..].iter().collect();
        terms.push(FieldTerm {
            field: field.trim().to_string(),
            not,
            value: unescape(&value)?,
        });
    }
    Ok(FieldSelector { terms })
}

/// The field labels the API server supports for pods.
pub const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

/// A pod's value of a field label (`podutil.PodToSelectableFields`).
pub fn pod_field(pod: &k8s_openapi::api::core::v1::Pod, field: &str) -> Option<String> {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    match field {
        "metadata.name" => pod.metadata.name.clone(),
        "metadata.namespace" => pod.metadata.namespace.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.restartPolicy" => spec.and_then(|s| s.restart_policy.clone()),
        "spec.schedulerName" => spec.and_then(|s| s.scheduler_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "spec.hostNetwork" => Some(
            spec.and_then(|s| s.host_network)
                .unwrap_or(false)
                .to_string(),
        ),
        "status.phase" => status.and_then(|s| s.phase.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.nominatedNodeName" => status.and_then(|s| s.nominated_node_name.clone()),
        _ => None,
    }
}

/// The field labels every other kind supports.
pub const META_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// apimachinery's selector_test.go TestSelectorMatches /
    /// TestSelectorParse cases.
    #[test]
    fn label_selectors_parse_and_match_as_apimachinery() {
        let matching: &[(&str, &[(&str, &str)])] = &[
            ("", &[("x", "y")]),
            ("x=y", &[("x", "y")]),
            ("x=y,z=w", &[("x", "y"), ("z", "w")]),
            ("x!=y,z!=w", &[("x", "z"), ("z", "a")]),
            ("notin=in", &[("notin", "in")]),
            ("x", &[("x", "z")]),
            ("!x", &[("y", "z")]),
            ("x>1", &[("x", "2")]),
            ("x<1", &[("x", "0")]),
            ("x in (a,b)", &[("x", "a")]),
            ("x notin (a,b)", &[("x", "c")]),
            ("x notin (a,b)", &[]),
            ("x!=y", &[]),
            ("x==y", &[("x", "y")]),
            ("x=", &[("x", "")]),
            ("x in (,a)", &[("x", "")]),
            (" x = y , z in ( a , b ) ", &[("x", "y"), ("z", "b")]),
            (
                "app=web,tier!=db,env in (a,b),env notin (c),key,!nokey",
                &[("app", "web"), ("tier", "fe"), ("env", "a"), ("key", "")],
            ),
            ("example.com/team=x", &[("example.com/team", "x")]),
        ];
        for (sel, l) in matching {
            let s = parse_label_selector(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert!(s.matches(Some(&labels(l))), "{sel} should match {l:?}");
        }
        let not_matching: &[(&str, &[(&str, &str)])] = &[
            ("x=z", &[]),
            ("x=y", &[("x", "z")]),
            ("x=y,z=w", &[("x", "w"), ("z", "w")]),
            ("x!=y,z!=w", &[("x", "z"), ("z", "w")]),
            ("x", &[("y", "z")]),
            ("!x", &[("x", "z")]),
            ("x>1", &[("x", "0")]),
            ("x>1", &[("x", "a")]),
            ("x<1", &[("x", "2")]),
            ("x in (a,b)", &[]),
            ("x in (a,b)", &[("x", "c")]),
            ("x notin (a,b)", &[("x", "b")]),
            ("app=web,tier!=db", &[("app", "web"), ("tier", "db")]),
        ];
        for (sel, l) in not_matching {
            let s = parse_label_selector(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert!(!s.matches(Some(&labels(l))), "{sel} should not match {l:?}");
        }
        assert!(parse_label_selector("")
            .map(|s| s.matches(None))
            .unwrap_or(false));
        assert!(parse_label_selector("!x")
            .map(|s| s.matches(None))
            .unwrap_or(false));
    }

    #[test]
    fn bad_label_selectors_are_refused_with_apimachinerys_words() {
        let cases: &[(&str, &str)] = &[
            ("x=a||y=b", "values[0][a||y]: Invalid value: \"a||y\""),
            ("x==a==b", "found '==', expected: ',' or 'end of string'"),
            ("x=a,", "found '', expected: identifier after ','"),
            ("!x=a", "found '=', expected: ',' or 'end of string'"),
            ("x in a", "found 'a', expected: '('"),
            ("x in (a", "found '', expected: ',' or ')'"),
            ("x in ()", "values set can't be empty"),
            ("x>a", "the value must be an integer"),
            ("x y", "found 'y', expected: in, notin, =, ==, !=, gt, lt"),
            ("=a", "found '=', expected: identifier"),
            ("-x=a", "key: Invalid value: \"-x\""),
            ("x=a b", "found 'b', expected: ',' or 'end of string'"),
            ("x=-a", "values[0][-a]: Invalid value: \"-a\""),
            (
                "Bad_Prefix/x=a",
                "prefix part a lowercase RFC 1123 subdomain",
            ),
        ];
        for (sel, want) in cases {
            match parse_label_selector(sel) {
                Ok(s) => panic!("{sel}: accepted as {s:?}"),
                Err(e) => assert!(e.contains(want), "{sel}: {e:?} does not contain {want:?}"),
            }
        }
    }

    #[test]
    fn field_selectors() {
        let s = parse_field_selector("status.phase=Running,metadata.name!=x").expect("parse");
        assert_eq!(
            s.terms,
            vec![
                FieldTerm {
                    field: "status.phase".into(),
                    not: false,
                    value: "Running".into()
                },
                FieldTerm {
                    field: "metadata.name".into(),
                    not: true,
                    value: "x".into()
                },
            ]
        );
        let get = |f: &str| match f {
            "status.phase" => Some("Running".to_string()),
            "metadata.name" => Some("web".to_string()),
            _ => None,
        };
        assert!(s.matches(get));
        assert!(
            !parse_field_selector("metadata.name==web,status.phase!=Running")
                .expect("parse")
                .matches(get)
        );
        assert!(parse_field_selector("spec.nodeName=")
            .expect("parse")
            .matches(get));
        let esc = parse_field_selector(r"metadata.name=a\,b").expect("parse");
        assert_eq!(esc.terms[0].value, "a,b");
        assert_eq!(
            parse_field_selector("status.phase").err().as_deref(),
            Some("invalid selector: 'status.phase'; can't understand 'status.phase'")
        );
        assert_eq!(
            parse_field_selector("spec.foo=x")
                .expect("parse")
                .check_fields(POD_FIELDS)
                .err()
                .as_deref(),
            Some("field label not supported: spec.foo")
        );
    }
}
