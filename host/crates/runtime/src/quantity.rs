//! Sizes as Kubernetes writes quantities, for memory limits in configuration files and flags.

use serde::{Deserialize, Deserializer};

/// A size as Kubernetes writes quantities (`64Mi`, `1Gi`, `500k`, `3145728`), or a plain number of bytes.
pub fn parse_quantity(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size: write e.g. 64Mi, 1Gi or 1048576"))?;
    let unit: usize = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use Ki, Mi, Gi, k, M or G"
            ));
        }
    };
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too large"))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Q {
        Number(usize),
        Text(String),
    }
    match Q::deserialize(d)? {
        Q::Number(n) => Ok(n),
        Q::Text(t) => parse_quantity(&t).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(parse_quantity("64Mi"), Ok(64 << 20));
        assert_eq!(parse_quantity("3145728"), Ok(3 << 20));
        assert_eq!(parse_quantity("1G"), Ok(1_000_000_000));
        assert!(
            parse_quantity("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_quantity("Mi").unwrap_err().contains("not a size"));
    }
}
