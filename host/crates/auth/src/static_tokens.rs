//! The static token file, in the format of Kubernetes' `--token-auth-file`: one CSV record a line,
//! `token,user,uid` and optionally a fourth column of comma-separated groups (quoted, since it
//! holds commas). Blank lines and lines starting with `#` are skipped. Unlike Kubernetes, an empty
//! or repeated token is an error rather than a warning: this file grants access.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

use super::UserInfo;

/// Reads and parses the file; an error names the file and the line.
pub(super) fn load(path: &Path) -> anyhow::Result<HashMap<String, UserInfo>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the static token file {}", path.display()))?;
    parse(&text).with_context(|| format!("the static token file {} is invalid", path.display()))
}

pub(super) fn parse(text: &str) -> anyhow::Result<HashMap<String, UserInfo>> {
    let mut tokens = HashMap::new();
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split_record(trimmed).map_err(|e| anyhow::anyhow!("line {number}: {e}"))?;
        let (token, user) = to_user(fields).map_err(|e| anyhow::anyhow!("line {number}: {e}"))?;
        if tokens.insert(token, user).is_some() {
            anyhow::bail!("line {number}: the token is repeated from an earlier line");
        }
    }
    Ok(tokens)
}

fn to_user(fields: Vec<String>) -> Result<(String, UserInfo), String> {
    let mut fields = fields.into_iter();
    let (Some(token), Some(username), Some(uid)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err("expected at least 3 columns: token,user,uid[,\"group1,group2\"]".into());
    };
    let groups = fields.next().unwrap_or_default();
    if fields.next().is_some() {
        return Err(
            "expected at most 4 columns (quote the groups column: \"group1,group2\")".into(),
        );
    }
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    if token.chars().any(char::is_whitespace) {
        return Err("the token contains white space".into());
    }
    if username.is_empty() {
        return Err("the user name is empty".into());
    }
    let groups = groups
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((
        token,
        UserInfo {
            username,
            uid,
            groups,
            client_id: None,
        },
    ))
}

/// One CSV record on one line: fields separated by commas, leading spaces dropped (as Go's
/// `csv.Reader` with `TrimLeadingSpace`, which Kubernetes uses), a field in double quotes may hold
/// commas and `""` for a quote.
fn split_record(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed"),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("unexpected text after a closing quote"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim_end().to_owned());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("a quote inside an unquoted field"),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim_end().to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_token_files() {
        let tokens = parse(
            "# bootstrap tokens\n\
             \n\
             t1,alice,u1,\"ops,dev\"\n\
             t2, bob ,u2\n\
             t3,carol,u3,solo\n\
             t4,dave,,\"\"\n\
             t5,\"eve, \"\"the\"\" spy\",u5,\" a , b ,\"\n",
        )
        .unwrap();
        let user = |t: &str| tokens.get(t).unwrap();
        assert_eq!(user("t1").username, "alice");
        assert_eq!(user("t1").uid, "u1");
        assert_eq!(user("t1").groups, ["ops", "dev"]);
        assert_eq!(user("t2").username, "bob");
        assert!(user("t2").groups.is_empty());
        assert_eq!(user("t3").groups, ["solo"]);
        assert_eq!(user("t4").uid, "");
        assert!(user("t4").groups.is_empty());
        assert_eq!(user("t5").username, "eve, \"the\" spy");
        assert_eq!(user("t5").groups, ["a", "b"]);
        assert_eq!(user("t1").client_id, None);
        assert_eq!(tokens.len(), 5);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, error) in [
            (
                "t1,alice\n",
                "line 1: expected at least 3 columns: token,user,uid[,\"group1,group2\"]",
            ),
            (
                "# c\nt1,alice,u1,ops,dev\n",
                "line 2: expected at most 4 columns (quote the groups column: \"group1,group2\")",
            ),
            (
                "t1,alice,u1\n\nt1,bob,u2\n",
                "line 3: the token is repeated from an earlier line",
            ),
            (",alice,u1\n", "line 1: the token is empty"),
            ("t1,,u1\n", "line 1: the user name is empty"),
            (
                "t1,alice,u1,\"ops\n",
                "line 1: a quoted field is not closed",
            ),
            (
                "t1,\"alice\"x,u1\n",
                "line 1: unexpected text after a closing quote",
            ),
            (
                "t1,al\"ice,u1\n",
                "line 1: a quote inside an unquoted field",
            ),
            (
                "\"t 1\",alice,u1\n",
                "line 1: the token contains white space",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(format!("{err:#}"), error, "{text:?}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "t1,alice\n").unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(
            err.contains("tokens.csv is invalid: line 1: expected at least 3 columns"),
            "{err}"
        );
        let err = format!("{:#}", load(&dir.path().join("missing.csv")).unwrap_err());
        assert!(
            err.starts_with("failed to read the static token file"),
            "{err}"
        );
    }
}
