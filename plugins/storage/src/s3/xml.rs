//! Just enough XML for S3: building small request bodies by hand, and reading answers into a
//! tree of elements (names without namespace prefixes, text with entities resolved).

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// The namespace S3 puts on every configuration document.
pub(crate) const S3_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Text made safe for an element's content or an attribute value.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// Appends `<name>text</name>`, escaped.
pub(crate) fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub(crate) fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child with this name.
    pub(crate) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a document into its root element. Text is trimmed, so indentation is not content.
pub(crate) fn parse(document: &[u8]) -> Result<Element, String> {
    let document = std::str::from_utf8(document).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut reader = Reader::from_str(document);
    // Parents of the element being read; the last one is the current element.
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(start) => stack.push(Element {
                name: start.local_name().into_inner().to_owned(),
                ..Element::default()
            }),
            Event::Empty(start) => {
                let element = Element {
                    name: start.local_name().into_inner().to_owned(),
                    ..Element::default()
                };
                attach(&mut stack, &mut root, element)?;
            }
            Event::End(_) => {
                let mut element = stack.pop().ok_or("closing tag without an opening one")?;
                element.text = element.text.trim().to_owned();
                attach(&mut stack, &mut root, element)?;
            }
            Event::Text(text) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&text.xml10_content());
                }
            }
            Event::CData(data) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&data.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(current) = stack.last_mut() {
                    match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => current.text.push(c),
                        None => current.text.push_str(
                            quick_xml::escape::resolve_predefined_entity(&reference)
                                .ok_or_else(|| format!("unknown entity &{};", &*reference))?,
                        ),
                    }
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no element in the document".into())
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err("more than one root element".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_s3_error_with_entities_and_a_namespace() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
            <Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Code>InvalidRequest</Code>
              <Message>Bad request: a &lt;b&gt; &amp; &#233; <![CDATA[<raw>]]></Message>
              <Resource>/b</Resource>
            </Error>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Error");
        assert_eq!(root.child_text("Code"), Some("InvalidRequest"));
        assert_eq!(
            root.child_text("Message"),
            Some("Bad request: a <b> & \u{e9} <raw>")
        );
    }

    #[test]
    fn keeps_repeated_children_in_order_and_strips_prefixes() {
        let root = parse(b"<s3:R><s3:A>1</s3:A><B/><s3:A>2</s3:A></s3:R>").unwrap();
        let values: Vec<&str> = root.children("A").map(|a| a.text.as_str()).collect();
        assert_eq!(values, ["1", "2"]);
        assert!(root.child("B").is_some());
    }

    #[test]
    fn refuses_what_is_not_a_document() {
        assert!(parse(b"").is_err());
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"<a/><b/>").is_err());
        assert!(parse(b"not xml").is_err());
    }

    #[test]
    fn escapes_what_would_break_a_body() {
        let mut out = String::new();
        element(&mut out, "Prefix", "logs/<a>&\"'");
        assert_eq!(out, "<Prefix>logs/&lt;a&gt;&amp;&quot;&apos;</Prefix>");
        assert_eq!(parse(out.as_bytes()).unwrap().text, "logs/<a>&\"'");
    }
}
