//! SOAP 1.1 and 1.2: for the web-service source (the fetcher's `http`), the request body
//! made from the operator's template ([`fill_template`]); for it and for the parser (a
//! SOAP answer dropped in an inbox or imported reads the same as one fetched), what an
//! answer holds ([`read_answer`]): its records as flat JSON objects, the next page's
//! token, or a fault.
//!
//! Promises: elements are matched by namespace URI and local name, never by prefix; a
//! document with a `DOCTYPE` is refused outright, so no DTD is read and no entity is
//! expanded (only the five predefined ones and character references are); values put
//! into a template are XML-escaped.

use std::collections::HashSet;

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use serde_json::{Map, Value};

/// The SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// How deep an answer may nest elements (deeper is refused, so nothing walking the
/// tree can run out of stack).
const MAX_DEPTH: usize = 256;

/// A SOAP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// SOAP 1.1: `text/xml`, a `SOAPAction` header, faults with `faultstring`.
    V11,
    /// SOAP 1.2: `application/soap+xml; action=...`, faults with `Reason/Text`.
    V12,
}

impl Version {
    /// The version of the envelope `document` (its root's namespace, looked for in the
    /// text; SOAP 1.1 unless SOAP 1.2's is there), for a file that does not say.
    pub fn sniff(document: &str) -> Self {
        if document.contains(SOAP12_NS) {
            Version::V12
        } else {
            Version::V11
        }
    }

    /// The envelope namespace URI.
    pub fn namespace(self) -> &'static str {
        match self {
            Version::V11 => SOAP11_NS,
            Version::V12 => SOAP12_NS,
        }
    }

    /// The `Content-Type` of a request carrying `action`: SOAP 1.1 sends the action in a
    /// `SOAPAction` header instead ([`Version::soap_action_header`]).
    pub fn content_type(self, action: Option<&str>) -> String {
        match (self, action) {
            (Version::V11, _) => "text/xml; charset=utf-8".to_owned(),
            (Version::V12, Some(action)) => {
                format!("application/soap+xml; charset=utf-8; action=\"{action}\"")
            }
            (Version::V12, None) => "application/soap+xml; charset=utf-8".to_owned(),
        }
    }

    /// The `SOAPAction` header's value (SOAP 1.1 only): the action in double quotes
    /// (`""` when there is none).
    pub fn soap_action_header(self, action: Option<&str>) -> Option<String> {
        match self {
            Version::V11 => Some(format!("\"{}\"", action.unwrap_or_default())),
            Version::V12 => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Version::V11 => "SOAP 1.1",
            Version::V12 => "SOAP 1.2",
        }
    }

    fn other(self) -> Self {
        match self {
            Version::V11 => Version::V12,
            Version::V12 => Version::V11,
        }
    }
}

/// The placeholders a request template may hold, each replaced by its value
/// XML-escaped.
pub const PLACEHOLDERS: [&str; 5] = ["{since}", "{offset}", "{limit}", "{page}", "{token}"];

/// The values for one page's request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fill<'a> {
    /// `{since}`: the delta time (ISO 8601, UTC), empty for a full fetch.
    pub since: &'a str,
    /// `{offset}`: records before this page.
    pub offset: &'a str,
    /// `{limit}`: the page size (empty without paging).
    pub limit: &'a str,
    /// `{page}`: the page number, from 1.
    pub page: &'a str,
    /// `{token}`: the token the previous answer gave, empty for the first page.
    pub token: &'a str,
}

/// `template` with each placeholder replaced by its value, XML-escaped, in one pass
/// (a value that itself looks like a placeholder stays as it is). Other braces are kept.
pub fn fill_template(template: &str, fill: &Fill<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let value = [
            ("{since}", fill.since),
            ("{offset}", fill.offset),
            ("{limit}", fill.limit),
            ("{page}", fill.page),
            ("{token}", fill.token),
        ]
        .into_iter()
        .find(|(name, _)| tail.starts_with(name));
        if let Some((name, value)) = value {
            out.push_str(&quick_xml::escape::escape(value));
            rest = &tail[name.len()..];
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Why an answer could not be read. The texts quote only the answer (fault strings,
/// element names), never the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    /// The answer declares a document type; DTDs are refused outright.
    #[error("the answer has a DOCTYPE: DTDs and entity declarations are refused")]
    Doctype,
    /// The answer is not well-formed XML (or not UTF-8, or nested too deeply).
    #[error("the answer is not well-formed XML: {0}")]
    Xml(String),
    /// The answer uses an entity that is neither predefined nor a character reference.
    #[error("the answer uses the undefined entity &{0};")]
    UndefinedEntity(String),
    /// The root element is not this version's `Envelope`, or it has no `Body`.
    #[error("{0}")]
    NotEnvelope(String),
    /// The answer is a SOAP fault.
    #[error("SOAP fault{}: {text}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Fault {
        /// `faultcode` (1.1) or `Code/Value` (1.2), when given.
        code: Option<String>,
        /// `faultstring` (1.1) or the first `Reason/Text` (1.2).
        text: String,
    },
    /// `records_path` leads nowhere.
    #[error("records_path {path}: no element {parent} in the answer")]
    RecordsPath {
        /// The path as configured.
        path: String,
        /// The part of it that matched nothing.
        parent: String,
    },
    /// Records were found automatically but are of different kinds.
    #[error("the answer holds records of different kinds ({0}): set records_path to say which")]
    Mixed(String),
}

/// What one SOAP answer holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The records, in document order, each a flat object: child element local name to
    /// its text (nested elements as `Parent.Child`; a repeated name as `Name (2)`).
    pub records: Vec<Map<String, Value>>,
    /// The next page's token (trimmed), when `token_path` was given and found non-empty.
    pub token: Option<String>,
}

/// Reads a SOAP answer of `version`: refuses a DOCTYPE, checks the envelope, fails with
/// [`SoapError::Fault`] on a fault, and otherwise returns the records (at `records_path`,
/// dotted local names matched anywhere under `Body`, like `//A/B`; absent: the elements
/// under `Body` whose children are all text and not all empty, the one holding the
/// token excepted) and the token (the text of the first element at `token_path`).
pub fn read_answer(
    body: &str,
    version: Version,
    records_path: Option<&str>,
    token_path: Option<&str>,
) -> Result<Answer, SoapError> {
    let doc = Doc::parse(body)?;
    let body = doc.body(version)?;
    if let Some(fault) = doc.fault(body, version) {
        return Err(fault);
    }
    let mut answer = Answer::default();
    let mut holder = None;
    if let Some(path) = token_path {
        let path = split_path(path);
        if let Some(&at) = doc.matching(body, &path).first() {
            holder = doc.elements[at].parent;
            let token = doc.elements[at].text.trim();
            if !token.is_empty() {
                answer.token = Some(token.to_owned());
            }
        }
    }
    let records = match records_path {
        Some(path) => {
            let segments = split_path(path);
            let found = doc.matching(body, &segments);
            if found.is_empty() && segments.len() > 1 {
                let parent = &segments[..segments.len() - 1];
                if doc.matching(body, parent).is_empty() {
                    return Err(SoapError::RecordsPath {
                        path: path.to_owned(),
                        parent: parent.join("."),
                    });
                }
            }
            found
        }
        None => doc.auto_records(body, holder)?,
    };
    answer.records = records.into_iter().map(|at| doc.flatten(at)).collect();
    Ok(answer)
}

/// The namespace an element name resolved to (an unknown prefix is an error).
fn namespace(ns: &ResolveResult<'_>) -> Result<Option<String>, SoapError> {
    match ns {
        ResolveResult::Bound(ns) => Ok(Some(ns.0.to_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(SoapError::Xml(format!(
            "the prefix {prefix}: is not bound to a namespace"
        ))),
    }
}

fn split_path(path: &str) -> Vec<&str> {
    path.split('.')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// One element of a parsed answer.
#[derive(Debug, Default)]
struct Element {
    ns: Option<String>,
    name: String,
    parent: Option<usize>,
    children: Vec<usize>,
    /// Its own text (for elements with children: ignored).
    text: String,
}

/// A parsed answer: elements in document order, the root first.
#[derive(Debug, Default)]
struct Doc {
    elements: Vec<Element>,
}

impl Doc {
    fn parse(text: &str) -> Result<Doc, SoapError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = NsReader::from_str(text);
        let mut doc = Doc::default();
        let mut open: Vec<usize> = Vec::new();
        loop {
            let (ns, event) = match reader.read_resolved_event() {
                Ok((ns, event)) => (namespace(&ns), event),
                Err(e) => {
                    return Err(SoapError::Xml(format!(
                        "{e} (at byte {})",
                        reader.error_position()
                    )));
                }
            };
            match event {
                Event::DocType(_) => return Err(SoapError::Doctype),
                Event::Start(_) | Event::Empty(_)
                    if !doc.elements.is_empty() && open.is_empty() =>
                {
                    return Err(SoapError::Xml("more than one root element".into()));
                }
                Event::Start(e) => {
                    let at = doc.add(ns?, e.local_name().as_ref(), open.last().copied());
                    open.push(at);
                    if open.len() > MAX_DEPTH {
                        return Err(SoapError::Xml(format!(
                            "elements nested deeper than {MAX_DEPTH}"
                        )));
                    }
                }
                Event::Empty(e) => {
                    doc.add(ns?, e.local_name().as_ref(), open.last().copied());
                }
                Event::End(_) => {
                    open.pop();
                }
                Event::Text(t) => {
                    if let Some(&at) = open.last() {
                        doc.elements[at].text.push_str(&t.xml10_content());
                    }
                }
                Event::CData(t) => {
                    if let Some(&at) = open.last() {
                        doc.elements[at].text.push_str(&t.xml10_content());
                    }
                }
                Event::GeneralRef(r) => {
                    let ch = r
                        .resolve_char_ref()
                        .map_err(|e| SoapError::Xml(format!("&{};: {e}", r.as_ref())))?;
                    let resolved = match ch {
                        Some(c) => c.to_string(),
                        None => quick_xml::escape::resolve_predefined_entity(&r)
                            .ok_or_else(|| SoapError::UndefinedEntity(r.as_ref().to_owned()))?
                            .to_owned(),
                    };
                    if let Some(&at) = open.last() {
                        doc.elements[at].text.push_str(&resolved);
                    }
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            }
        }
        if let Some(&at) = open.last() {
            return Err(SoapError::Xml(format!(
                "the answer ends inside <{}>",
                doc.elements[at].name
            )));
        }
        if doc.elements.is_empty() {
            return Err(SoapError::Xml("no element at all".into()));
        }
        Ok(doc)
    }

    fn add(&mut self, ns: Option<String>, name: &str, parent: Option<usize>) -> usize {
        let at = self.elements.len();
        self.elements.push(Element {
            ns,
            name: name.to_owned(),
            parent,
            ..Element::default()
        });
        if let Some(parent) = parent {
            self.elements[parent].children.push(at);
        }
        at
    }

    fn is(&self, at: usize, ns: Option<&str>, name: &str) -> bool {
        let e = &self.elements[at];
        e.name == name && e.ns.as_deref() == ns
    }

    fn child(&self, at: usize, ns: Option<&str>, name: &str) -> Option<usize> {
        self.elements[at]
            .children
            .iter()
            .copied()
            .find(|&c| self.is(c, ns, name))
    }

    /// The `Body` of this version's envelope.
    fn body(&self, version: Version) -> Result<usize, SoapError> {
        let ns = version.namespace();
        if !self.is(0, Some(ns), "Envelope") {
            let root = &self.elements[0];
            if self.is(0, Some(version.other().namespace()), "Envelope") {
                return Err(SoapError::NotEnvelope(format!(
                    "a {} answer to a {} request",
                    version.other().name(),
                    version.name()
                )));
            }
            return Err(SoapError::NotEnvelope(format!(
                "not a {} envelope: the root element is {} in namespace {}",
                version.name(),
                root.name,
                root.ns.as_deref().unwrap_or("(none)")
            )));
        }
        self.child(0, Some(ns), "Body").ok_or_else(|| {
            SoapError::NotEnvelope(format!("the {} envelope has no Body", version.name()))
        })
    }

    /// The fault in `body`, if it holds one.
    fn fault(&self, body: usize, version: Version) -> Option<SoapError> {
        let ns = version.namespace();
        let fault = self.child(body, Some(ns), "Fault")?;
        let text_of = |at: Option<usize>| at.map(|at| self.elements[at].text.trim().to_owned());
        let (code, text) = match version {
            Version::V11 => {
                // faultcode and faultstring are unqualified; some servers qualify them.
                let find = |name| {
                    self.child(fault, None, name)
                        .or_else(|| self.child(fault, Some(ns), name))
                };
                (text_of(find("faultcode")), text_of(find("faultstring")))
            }
            Version::V12 => {
                let code = self
                    .child(fault, Some(ns), "Code")
                    .and_then(|c| self.child(c, Some(ns), "Value"));
                let reason = self
                    .child(fault, Some(ns), "Reason")
                    .and_then(|r| self.child(r, Some(ns), "Text"));
                (text_of(code), text_of(reason))
            }
        };
        Some(SoapError::Fault {
            code: code.filter(|c| !c.is_empty()),
            text: text
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "(no fault string)".to_owned()),
        })
    }

    /// The descendants of `under`, in document order.
    fn descendants(&self, under: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack: Vec<usize> = self.elements[under]
            .children
            .iter()
            .rev()
            .copied()
            .collect();
        while let Some(at) = stack.pop() {
            out.push(at);
            stack.extend(self.elements[at].children.iter().rev().copied());
        }
        out
    }

    /// The elements strictly under `under` whose own name and nearest ancestors' names
    /// are `path` (its last segment the element's own name), in document order.
    fn matching(&self, under: usize, path: &[&str]) -> Vec<usize> {
        let Some((last, before)) = path.split_last() else {
            return Vec::new();
        };
        self.descendants(under)
            .into_iter()
            .filter(|&at| {
                if self.elements[at].name != *last {
                    return false;
                }
                let mut up = self.elements[at].parent;
                for name in before.iter().rev() {
                    match up {
                        Some(p) if p != under && self.elements[p].name == *name => {
                            up = self.elements[p].parent;
                        }
                        _ => return false,
                    }
                }
                true
            })
            .collect()
    }

    /// The elements under `body` that look like records: children all text-only, at least
    /// one of them not empty (`holder`, the token's parent, excepted). Not descended into.
    fn auto_records(&self, body: usize, holder: Option<usize>) -> Result<Vec<usize>, SoapError> {
        let leaf = |at: usize| self.elements[at].children.is_empty();
        let mut found = Vec::new();
        let mut stack: Vec<usize> = self.elements[body].children.iter().rev().copied().collect();
        while let Some(at) = stack.pop() {
            let children = &self.elements[at].children;
            let record = !children.is_empty()
                && children.iter().all(|&c| leaf(c))
                && children
                    .iter()
                    .any(|&c| !self.elements[c].text.trim().is_empty());
            if record && Some(at) != holder {
                found.push(at);
            } else {
                stack.extend(children.iter().rev().copied());
            }
        }
        let kinds: HashSet<(Option<&str>, &str)> = found
            .iter()
            .map(|&at| {
                (
                    self.elements[at].ns.as_deref(),
                    self.elements[at].name.as_str(),
                )
            })
            .collect();
        if kinds.len() > 1 {
            let mut names: Vec<&str> = kinds.iter().map(|(_, name)| *name).collect();
            names.sort_unstable();
            names.dedup();
            return Err(SoapError::Mixed(names.join(", ")));
        }
        Ok(found)
    }

    /// A record element as a flat object.
    fn flatten(&self, record: usize) -> Map<String, Value> {
        let mut map = Map::new();
        let mut stack: Vec<(usize, String)> = self.elements[record]
            .children
            .iter()
            .rev()
            .map(|&c| (c, self.elements[c].name.clone()))
            .collect();
        while let Some((at, key)) = stack.pop() {
            let e = &self.elements[at];
            if e.children.is_empty() {
                let mut unique = key.clone();
                let mut n = 1;
                while map.contains_key(&unique) {
                    n += 1;
                    unique = format!("{key} ({n})");
                }
                map.insert(unique, Value::String(e.text.clone()));
            } else {
                stack.extend(
                    e.children
                        .iter()
                        .rev()
                        .map(|&c| (c, format!("{key}.{}", self.elements[c].name))),
                );
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(body: &str) -> String {
        format!("<e:Envelope xmlns:e=\"{SOAP11_NS}\"><e:Body>{body}</e:Body></e:Envelope>")
    }

    fn records(answer: &Answer) -> Vec<Value> {
        answer.records.iter().cloned().map(Value::Object).collect()
    }

    #[test]
    fn templates_are_filled_in_one_pass_with_escaped_values() {
        let fill = Fill {
            since: "2026-11-29T14:50:00Z",
            offset: "100",
            limit: "50",
            page: "3",
            token: "a&b<{page}>\"'",
        };
        assert_eq!(
            fill_template(
                "<q s='{since}' o='{offset}'>{limit}{page}{token}{other}{</q>",
                &fill
            ),
            "<q s='2026-11-29T14:50:00Z' o='100'>503a&amp;b&lt;{page}&gt;&quot;&apos;{other}{</q>"
        );
    }

    #[test]
    fn records_are_found_automatically_and_empty_wrappers_are_not_records() {
        let page = envelope(
            "<R xmlns=\"urn:x\"><Meta><Total>2</Total></Meta><List>\
             <P><Mail>a@x</Mail><Name>A &amp; B</Name><Tel/></P>\
             <P><Mail>b@x</Mail><Name><![CDATA[<C>]]></Name><Tel>1</Tel><Tel>2</Tel></P>\
             </List></R>",
        );
        let e = read_answer(&page, Version::V11, None, None).unwrap_err();
        assert_eq!(
            e,
            SoapError::Mixed("Meta, P".into()),
            "Meta holds only text too"
        );
        let answer = read_answer(&page, Version::V11, Some("List.P"), None).unwrap();
        assert_eq!(
            records(&answer),
            [
                json!({"Mail": "a@x", "Name": "A & B", "Tel": ""}),
                json!({"Mail": "b@x", "Name": "<C>", "Tel": "1", "Tel (2)": "2"}),
            ]
        );
        let empty = envelope("<R><Result/></R>");
        assert!(
            read_answer(&empty, Version::V11, None, None)
                .unwrap()
                .records
                .is_empty()
        );
    }

    #[test]
    fn the_token_holder_is_not_a_record() {
        let last = envelope("<R><Next>  t9 </Next><Count>0</Count></R>");
        let answer = read_answer(&last, Version::V11, None, Some("R.Next")).unwrap();
        assert_eq!(answer.token.as_deref(), Some("t9"));
        assert!(answer.records.is_empty());
        let none = envelope("<R><Next/><P><M>a</M></P></R>");
        let answer = read_answer(&none, Version::V11, None, Some("Next")).unwrap();
        assert_eq!(answer.token, None);
        assert_eq!(records(&answer), [json!({"M": "a"})]);
    }

    #[test]
    fn a_records_path_that_leads_nowhere_is_an_error() {
        let page = envelope("<R><List/></R>");
        assert!(
            read_answer(&page, Version::V11, Some("List.P"), None)
                .unwrap()
                .records
                .is_empty()
        );
        assert_eq!(
            read_answer(&page, Version::V11, Some("Lists.P"), None).unwrap_err(),
            SoapError::RecordsPath {
                path: "Lists.P".into(),
                parent: "Lists".into()
            }
        );
    }

    #[test]
    fn bad_documents_are_refused() {
        let deep = envelope(&format!("{}{}", "<a>".repeat(300), "</a>".repeat(300)));
        assert!(matches!(
            read_answer(&deep, Version::V11, None, None),
            Err(SoapError::Xml(m)) if m.contains("deeper than 256")
        ));
        let unbound = envelope("<p:R><x/></p:R>");
        assert!(matches!(
            read_answer(&unbound, Version::V11, None, None),
            Err(SoapError::Xml(m)) if m.contains("prefix p")
        ));
        let cut = format!("<e:Envelope xmlns:e=\"{SOAP11_NS}\"><e:Body><R>");
        assert!(matches!(
            read_answer(&cut, Version::V11, None, None),
            Err(SoapError::Xml(_))
        ));
        let laughs = "<!DOCTYPE l [<!ENTITY a \"ha\"><!ENTITY b \"&a;&a;\">]><l>&b;</l>";
        assert_eq!(
            read_answer(laughs, Version::V11, None, None),
            Err(SoapError::Doctype)
        );
        let no_body = format!("<e:Envelope xmlns:e=\"{SOAP12_NS}\"/>");
        assert_eq!(
            read_answer(&no_body, Version::V12, None, None),
            Err(SoapError::NotEnvelope(
                "the SOAP 1.2 envelope has no Body".into()
            ))
        );
    }
}
