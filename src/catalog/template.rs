//! Resource templates: how a catalog operation names the Azure resource it
//! acts on, built from the arguments of one tool call.
//!
//! The template language (see `schemas/catalog/README.md`):
//!
//! - `/` — the root scope: the call names no Azure resource.
//! - `{arg}` alone — the argument holds a whole ARM id (or an array of ids:
//!   one operation per id), e.g. `{workbook-ids}`.
//! - an ARM id path: `/subscriptions/S[/resourceGroups/G][/providers/NS/type/N(/type/N)*]`
//!   where `S`, `G` and every name `N` are a literal, a placeholder `{arg}`,
//!   or `{arg|host}` (the resource name is the first DNS label of a URL or
//!   host name, e.g. an `endpoint`); `S` and `G` may be `*` (the tool takes
//!   no such argument, so that scope is never known); `NS/type` may be one
//!   placeholder `{arg}` holding a resource type such as
//!   `Microsoft.Storage/storageAccounts`, or `*` (type unknown).
//!
//! Building an id never fails on a missing argument: the id stops at the
//! narrowest scope whose every part is known (the *widening* rule).
//! [`Resource::subscription`] and [`Resource::resource_group`] are the
//! scopes of the id (they always agree with it), while
//! [`Resource::resource_type`] and [`Resource::name`] describe the resource
//! the arguments name even when the id had to widen. A value that cannot be part of an ARM id
//! (a name with `/`, an id that does not parse, ...) is an error, which the
//! catalog turns into an operation of class `unknown`.

use serde_json::Value;

use super::Resource;
use crate::azure::id::{ArmId, IdError, ScopeKind, is_valid_segment};

/// The default template of an operation that names no `resource`.
pub(crate) const DEFAULT_TEMPLATE: &str =
    "/subscriptions/{subscription}/resourceGroups/{resource-group}";

/// DNS suffixes of Azure service endpoints: for a host under one of them the
/// first label is the resource name (`myvault.vault.azure.net` → `myvault`).
/// Any other host name is kept whole, so it never looks like an Azure name.
const AZURE_DNS_SUFFIXES: &[&str] = &[
    ".azure.com",
    ".azure.net",
    ".windows.net",
    ".azurecr.io",
    ".azure.cn",
    ".chinacloudapi.cn",
    ".usgovcloudapi.net",
    ".azure.us",
];

/// What a placeholder's value must look like, by its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A resource, group or subscription name.
    Name,
    /// A URL or host name whose first label is the resource name.
    Host,
    /// A resource type `Namespace/type`.
    Type,
    /// A whole ARM id, or an array of them.
    Id,
}

impl Slot {
    fn describe(self) -> &'static str {
        match self {
            Slot::Name => "resource name",
            Slot::Host => "host name or URL",
            Slot::Type => "resource type (Namespace/type)",
            Slot::Id => "ARM resource id",
        }
    }
}

/// One name segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Literal(String),
    Arg {
        name: String,
        slot: Slot,
    },
    /// `*`: never known (the tool has no argument for it).
    Unknown,
}

/// The type part of one `type/name` step of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypeSeg {
    /// `Microsoft.Compute/virtualMachines` (first step) or `subnets` (child).
    Literal(String),
    /// `{arg}` holding `Namespace/type` (first step only).
    Arg(String),
    /// `*`: unknown type (first step only).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Template {
    Root,
    Id(String),
    Path {
        subscription: Seg,
        resource_group: Option<Seg>,
        steps: Vec<(TypeSeg, Seg)>,
    },
}

impl Template {
    /// Parses a template; the error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        if text == "/" {
            return Ok(Template::Root);
        }
        if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}'))
            && !text.contains('/')
        {
            let name = inner;
            check_arg_name(name)?;
            return Ok(Template::Id(name.to_owned()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "template `{text}` must be `/`, `{{argument}}` (an argument holding ARM ids) \
                 or an ARM id path starting with `/subscriptions/`"
            ));
        };
        let segs: Vec<&str> = rest.split('/').collect();
        if segs.iter().any(|s| s.is_empty()) {
            return Err(format!("template `{text}` has an empty segment"));
        }
        if !segs[0].eq_ignore_ascii_case("subscriptions") || segs.len() < 2 {
            return Err(format!(
                "template `{text}` must start with `/subscriptions/{{...}}` (or be `/` or `{{argument}}`)"
            ));
        }
        let subscription = parse_seg(segs[1], true)?;
        let mut i = 2;
        let mut resource_group = None;
        if i < segs.len() && segs[i].eq_ignore_ascii_case("resourceGroups") {
            let Some(g) = segs.get(i + 1) else {
                return Err(format!(
                    "template `{text}`: `resourceGroups` has no name segment"
                ));
            };
            resource_group = Some(parse_seg(g, true)?);
            i += 2;
        }
        let mut steps = Vec::new();
        if i < segs.len() {
            if !segs[i].eq_ignore_ascii_case("providers") {
                return Err(format!(
                    "template `{text}`: expected `providers` after the {}, found `{}`",
                    if resource_group.is_some() {
                        "resource group"
                    } else {
                        "subscription"
                    },
                    segs[i]
                ));
            }
            i += 1;
            let first = segs.get(i).copied().unwrap_or_default();
            let (first_type, next) = if first == "*" {
                (TypeSeg::Unknown, i + 1)
            } else if let Some(name) = placeholder(first) {
                let (name, filter) = split_filter(name);
                if filter.is_some() {
                    return Err(format!(
                        "template `{text}`: a resource type placeholder takes no filter"
                    ));
                }
                check_arg_name(name)?;
                (TypeSeg::Arg(name.to_owned()), i + 1)
            } else {
                let (Some(ns), Some(ty)) = (segs.get(i), segs.get(i + 1)) else {
                    return Err(format!(
                        "template `{text}`: `providers` needs a namespace and a type"
                    ));
                };
                check_literal(ns, text)?;
                check_literal(ty, text)?;
                if !ns.contains('.') {
                    return Err(format!(
                        "template `{text}`: `{ns}` is not a resource provider namespace (like Microsoft.Compute)"
                    ));
                }
                (TypeSeg::Literal(format!("{ns}/{ty}")), i + 2)
            };
            let Some(name) = segs.get(next) else {
                return Err(format!(
                    "template `{text}`: the resource type has no name segment"
                ));
            };
            steps.push((first_type, parse_seg(name, false)?));
            let mut j = next + 1;
            while j < segs.len() {
                let ty = segs[j];
                check_literal(ty, text)?;
                let Some(name) = segs.get(j + 1) else {
                    return Err(format!(
                        "template `{text}`: type `{ty}` has no name segment"
                    ));
                };
                steps.push((TypeSeg::Literal(ty.to_owned()), parse_seg(name, false)?));
                j += 2;
            }
        }
        Ok(Template::Path {
            subscription,
            resource_group,
            steps,
        })
    }

    /// The placeholders in order of appearance, with their slots.
    pub(crate) fn placeholders(&self) -> Vec<(&str, Slot)> {
        let mut out = Vec::new();
        match self {
            Template::Root => {}
            Template::Id(name) => out.push((name.as_str(), Slot::Id)),
            Template::Path {
                subscription,
                resource_group,
                steps,
            } => {
                push_seg(subscription, &mut out);
                if let Some(g) = resource_group {
                    push_seg(g, &mut out);
                }
                for (ty, name) in steps {
                    if let TypeSeg::Arg(a) = ty {
                        out.push((a.as_str(), Slot::Type));
                    }
                    push_seg(name, &mut out);
                }
            }
        }
        out
    }

    /// The placeholder that says which resource an alternative names: for
    /// an id template its argument; for a path the first resource name
    /// placeholder (the top-level resource, e.g. `{cluster}` in
    /// `.../clusters/{cluster}/databases/{database}`), or without one the
    /// last placeholder (`{subscription}` in `/subscriptions/{subscription}`).
    fn key(&self) -> Option<(&str, Slot)> {
        match self {
            Template::Root => None,
            Template::Id(name) => Some((name.as_str(), Slot::Id)),
            Template::Path { steps, .. } => steps
                .iter()
                .find_map(|(_, name)| match name {
                    Seg::Arg { name, slot } => Some((name.as_str(), *slot)),
                    _ => None,
                })
                .or_else(|| self.placeholders().last().copied()),
        }
    }

    /// An alternative applies to a call when its key argument has a value
    /// and every value it uses fits its slot. A template without
    /// placeholders never applies; it can only be the fallback.
    fn applies(&self, args: &Value) -> bool {
        let Some((key, key_slot)) = self.key() else {
            return false;
        };
        let key_value = arg(args, key);
        if matches!(key_value, Arg::Missing) || check(key_slot, &key_value).is_none() {
            return false;
        }
        self.placeholders().iter().all(|&(name, slot)| {
            let value = arg(args, name);
            matches!(value, Arg::Missing) || check(slot, &value).is_some()
        })
    }

    /// The resources this template names for `args` (several for an id
    /// array); an error if the values do not make an ARM id.
    fn build(&self, args: &Value) -> Result<Vec<Resource>, String> {
        Ok(match self {
            Template::Root => vec![Resource::root()],
            Template::Id(name) => match check(Slot::Id, &arg(args, name)) {
                Some(Checked::Ids(ids)) if !ids.is_empty() => ids,
                _ => vec![Resource::root()],
            },
            Template::Path {
                subscription,
                resource_group,
                steps,
            } => vec![build_path(
                subscription,
                resource_group.as_ref(),
                steps,
                args,
            )?],
        })
    }
}

/// Resolves the alternatives of one operation: every alternative that
/// applies names a resource (each must be authorized); when none applies the
/// last one is used, widened to what is known. An argument whose value fits
/// none of the slots it appears in is an error (the caller makes the call
/// `unknown`).
pub(crate) fn resolve(alternatives: &[Template], args: &Value) -> Result<Vec<Resource>, String> {
    for template in alternatives {
        for (name, _) in template.placeholders() {
            let value = arg(args, name);
            if matches!(value, Arg::Missing) {
                continue;
            }
            let slots: Vec<Slot> = alternatives
                .iter()
                .flat_map(|t| t.placeholders())
                .filter(|(n, _)| *n == name)
                .map(|(_, s)| s)
                .collect();
            if !slots.iter().any(|&s| check(s, &value).is_some()) {
                let wanted: Vec<&str> = slots.iter().map(|s| s.describe()).collect();
                return Err(format!(
                    "argument `{name}` is not a valid {}",
                    wanted.join(" or ")
                ));
            }
        }
    }
    let applying: Vec<&Template> = alternatives.iter().filter(|t| t.applies(args)).collect();
    let chosen = if applying.is_empty() {
        alternatives.last().into_iter().collect()
    } else {
        applying
    };
    let mut out: Vec<Resource> = Vec::new();
    for template in chosen {
        for resource in template.build(args)? {
            if !out.contains(&resource) {
                out.push(resource);
            }
        }
    }
    if out.is_empty() {
        out.push(Resource::root());
    }
    Ok(out)
}

/// Whether `s` is a GUID, i.e. a subscription id rather than a display name.
pub(crate) use crate::identity::is_guid;

/// Parses an ARM id (`/`, `/subscriptions/...`, `/providers/...`, extension
/// resources included) into a lower-cased [`Resource`]. A subscription given
/// by name (not a GUID) keeps the id at subscription scope.
pub(crate) fn parse_arm_id(text: &str) -> Option<Resource> {
    ArmId::parse(text).ok().map(resource_at)
}

/// The resource `id` names. A subscription given by name (not a GUID) keeps
/// the id at subscription scope, while the type and name still say what
/// was named.
pub(crate) fn resource_at(id: ArmId) -> Resource {
    let named = matches!(id.kind(), ScopeKind::Resource | ScopeKind::ManagementGroup);
    let mut resource = Resource::root();
    resource.name = named.then(|| id.name().map(str::to_owned)).flatten();
    resource.resource_type = id.resource_type();
    resource.subscription = id.subscription().map(str::to_owned);
    resource.group_name = id.resource_group().map(str::to_owned);
    resource.names = id
        .provider_path()
        .map(|p| p.names.iter().map(|n| n.to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let by_name = resource
        .subscription
        .as_deref()
        .is_some_and(|s| !is_guid(s));
    if by_name {
        if let Some(subscription) = id.ancestor(ScopeKind::Subscription) {
            resource.id = subscription;
        }
    } else {
        resource.resource_group = id.resource_group().map(str::to_owned);
        resource.id = id;
    }
    resource
}

/// The resource name in a URL or host name: the first DNS label under an
/// Azure service domain, the whole host otherwise, the value itself when it
/// is a plain name. Lower-cased.
pub(crate) fn host_name(value: &str) -> Option<String> {
    let value = value.trim().to_ascii_lowercase();
    let rest = match value.find("://") {
        Some(i) => &value[i + 3..],
        None => value.as_str(),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return None;
    }
    if AZURE_DNS_SUFFIXES
        .iter()
        .any(|suffix| host.ends_with(suffix))
    {
        host.split('.').next().map(str::to_owned)
    } else {
        Some(host.to_owned())
    }
}

/// An argument's value as far as templates are concerned.
enum Arg<'a> {
    Missing,
    Scalar(String),
    List(&'a [Value]),
    Other,
}

fn arg<'a>(args: &'a Value, name: &str) -> Arg<'a> {
    match args.get(name) {
        None | Some(Value::Null) => Arg::Missing,
        Some(Value::String(s)) if s.trim().is_empty() => Arg::Missing,
        Some(Value::String(s)) => Arg::Scalar(s.trim().to_owned()),
        Some(Value::Number(n)) => Arg::Scalar(n.to_string()),
        Some(Value::Array(items)) if items.is_empty() => Arg::Missing,
        Some(Value::Array(items)) => Arg::List(items),
        Some(_) => Arg::Other,
    }
}

/// A value that fits its slot.
enum Checked {
    Value(String),
    /// Fits, but names no single resource (a wildcard name, a nested type):
    /// the id widens above it.
    Widen,
    Ids(Vec<Resource>),
}

fn check(slot: Slot, value: &Arg<'_>) -> Option<Checked> {
    match (slot, value) {
        (_, Arg::Missing | Arg::Other) => None,
        (Slot::Name, Arg::Scalar(s)) if s.contains('*') && valid_name(&s.replace('*', "x")) => {
            Some(Checked::Widen)
        }
        (Slot::Name, Arg::Scalar(s)) => {
            valid_name(s).then(|| Checked::Value(s.to_ascii_lowercase()))
        }
        (Slot::Host, Arg::Scalar(s)) => host_name(s).map(Checked::Value),
        (Slot::Type, Arg::Scalar(s)) => {
            let parts: Vec<&str> = s.split('/').collect();
            let tokens_ok = parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            });
            if !tokens_ok || parts.len() < 2 || !parts[0].contains('.') {
                None
            } else if parts.len() == 2 {
                Some(Checked::Value(s.to_ascii_lowercase()))
            } else {
                Some(Checked::Widen)
            }
        }
        (Slot::Id, Arg::Scalar(s)) => parse_arm_id(s).map(|r| Checked::Ids(vec![r])),
        (Slot::Id, Arg::List(items)) => items
            .iter()
            .map(|item| item.as_str().and_then(parse_arm_id))
            .collect::<Option<Vec<_>>>()
            .map(Checked::Ids),
        (Slot::Name | Slot::Host | Slot::Type, Arg::List(_)) => None,
    }
}

/// A name that can be one segment of an ARM id.
fn valid_name(s: &str) -> bool {
    is_valid_segment(s)
}

fn build_path(
    subscription: &Seg,
    group: Option<&Seg>,
    steps: &[(TypeSeg, Seg)],
    args: &Value,
) -> Result<Resource, String> {
    let value = |seg: &Seg| -> Option<String> {
        match seg {
            Seg::Literal(l) => Some(l.to_ascii_lowercase()),
            Seg::Arg { name, slot } => match check(*slot, &arg(args, name)) {
                Some(Checked::Value(v)) => Some(v),
                _ => None,
            },
            Seg::Unknown => None,
        }
    };
    let invalid = |e: IdError| e.to_string();
    let mut resource = Resource::root();
    let mut id = ArmId::root();
    // Once a scope is unknown, nothing narrower can be part of the id.
    let mut frozen = match value(subscription) {
        Some(sub) => {
            id = ArmId::for_subscription(&sub).map_err(invalid)?;
            // A subscription given by name keeps the id at subscription scope.
            let by_name = !is_guid(&sub);
            resource.subscription = Some(sub);
            by_name
        }
        None => true,
    };
    if let Some(group) = group {
        let named = value(group);
        resource.group_name = named.clone();
        match named {
            // The group is a scope of the id only under a known subscription id.
            Some(g) if !frozen => {
                id = id.with_resource_group(&g).map_err(invalid)?;
                resource.resource_group = Some(g);
            }
            Some(_) => {}
            None => frozen = true,
        }
    }
    let mut type_path: Option<String> = None;
    for (index, (ty, name)) in steps.iter().enumerate() {
        let step_type = match ty {
            TypeSeg::Literal(t) if index == 0 => Some(t.to_ascii_lowercase()),
            TypeSeg::Literal(t) => type_path
                .as_ref()
                .map(|p| format!("{p}/{}", t.to_ascii_lowercase())),
            TypeSeg::Arg(a) => match check(Slot::Type, &arg(args, a)) {
                Some(Checked::Value(v)) => Some(v),
                _ => None,
            },
            TypeSeg::Unknown => None,
        };
        let Some(name) = value(name) else { break };
        resource.name = Some(name.clone());
        resource.names.push(name.clone());
        match step_type {
            Some(t) => {
                if !frozen {
                    id = match ty {
                        TypeSeg::Literal(l) if index > 0 => {
                            id.with_child(&l.to_ascii_lowercase(), &name)
                        }
                        _ => id.with_provider(&t, &name),
                    }
                    .map_err(invalid)?;
                }
                type_path = Some(t);
                resource.resource_type = type_path.clone();
            }
            None => {
                // The name is known but not its type: no id, no deeper steps.
                resource.resource_type = None;
                break;
            }
        }
    }
    resource.id = id;
    Ok(resource)
}

fn push_seg<'a>(seg: &'a Seg, out: &mut Vec<(&'a str, Slot)>) {
    if let Seg::Arg { name, slot } = seg {
        out.push((name.as_str(), *slot));
    }
}

fn placeholder(seg: &str) -> Option<&str> {
    seg.strip_prefix('{')?.strip_suffix('}')
}

fn split_filter(inner: &str) -> (&str, Option<&str>) {
    match inner.split_once('|') {
        Some((name, filter)) => (name, Some(filter)),
        None => (inner, None),
    }
}

fn parse_seg(seg: &str, star_allowed: bool) -> Result<Seg, String> {
    if seg == "*" {
        return if star_allowed {
            Ok(Seg::Unknown)
        } else {
            Err(
                "`*` may stand only for the subscription, the resource group or a resource type"
                    .into(),
            )
        };
    }
    if let Some(inner) = placeholder(seg) {
        let (name, filter) = split_filter(inner);
        check_arg_name(name)?;
        let slot = match filter {
            None => Slot::Name,
            Some("host") => Slot::Host,
            Some(other) => {
                return Err(format!(
                    "unknown filter `|{other}` in `{seg}` (the one filter is `|host`)"
                ));
            }
        };
        return Ok(Seg::Arg {
            name: name.to_owned(),
            slot,
        });
    }
    check_literal(seg, seg)?;
    Ok(Seg::Literal(seg.to_owned()))
}

fn check_literal(seg: &str, template: &str) -> Result<(), String> {
    if seg.contains(['{', '}', '*', '|']) || !valid_name(seg) {
        Err(format!("template `{template}`: malformed segment `{seg}`"))
    } else {
        Ok(())
    }
}

/// Argument names: letters, digits, `-` and `_`.
pub(crate) fn check_arg_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "malformed placeholder `{{{name}}}` (argument names are letters, digits, `-`, `_`)"
        ))
    }
}
