//! Kubernetes resource quantities (`500m`, `0.5`, `4`, `128Mi`, `1G`, `1e3`), as the operator
//! writes them in settings and as charts write them in `resources.requests`: exact to a
//! thousandth, compared and added without rounding errors, and shown back in Kubernetes'
//! own notation.

/// A non-negative quantity, in thousandths of its unit (millicores for CPU, millibytes for
/// memory), rounded up as Kubernetes rounds a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(u128);

/// Binary suffixes, largest first, with their powers of 1024.
const BINARY: [(&str, u32); 6] = [
    ("Ei", 6),
    ("Pi", 5),
    ("Ti", 4),
    ("Gi", 3),
    ("Mi", 2),
    ("Ki", 1),
];
/// Decimal suffixes with their powers of ten.
const DECIMAL: [(&str, i32); 9] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

impl Quantity {
    pub const ZERO: Self = Self(0);

    /// Reads a quantity as Kubernetes does; `None` for anything else, a negative number, or
    /// one beyond what can be counted here.
    pub fn parse(text: &str) -> Option<Self> {
        let number_end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let digits = format!("{whole}{fraction}");
        if digits.len() > 30 {
            return None;
        }
        let mantissa: u128 = digits.parse().ok()?;
        let scale = i32::try_from(fraction.len()).ok()?;
        if let Some((_, power)) = BINARY.iter().find(|(s, _)| *s == suffix) {
            let numerator = mantissa
                .checked_mul(1u128.checked_shl(10 * power)?)?
                .checked_mul(1000)?;
            return Some(Self(
                numerator.div_ceil(10u128.checked_pow(scale.unsigned_abs())?),
            ));
        }
        let exponent = match suffix {
            "" => 0,
            _ => match DECIMAL.iter().find(|(s, _)| *s == suffix) {
                Some((_, power)) => *power,
                None => {
                    let rest = suffix.strip_prefix(['e', 'E'])?;
                    let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
                    if digits.is_empty()
                        || digits.len() > 2
                        || !digits.bytes().all(|b| b.is_ascii_digit())
                    {
                        return None;
                    }
                    rest.parse().ok()?
                }
            },
        };
        let shift = exponent + 3 - scale;
        let millis = if shift >= 0 {
            mantissa.checked_mul(10u128.checked_pow(shift.unsigned_abs())?)?
        } else {
            mantissa.div_ceil(10u128.checked_pow(shift.unsigned_abs())?)
        };
        Some(Self(millis))
    }

    /// `count` of `self` (at most the largest quantity).
    pub fn times(self, count: u64) -> Self {
        Self(self.0.saturating_mul(u128::from(count)))
    }

    /// `self` and `other` together (at most the largest quantity).
    pub fn plus(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// As a CPU quantity: whole cores (`4`) or millicores (`250m`).
    pub fn cpu(self) -> String {
        if self.0.is_multiple_of(1000) {
            (self.0 / 1000).to_string()
        } else {
            format!("{}m", self.0)
        }
    }

    /// As a memory quantity: the largest binary unit that holds it exactly (`8Gi`, `640Mi`),
    /// else bytes.
    pub fn memory(self) -> String {
        let bytes = self.0.div_ceil(1000);
        for (suffix, power) in BINARY {
            let unit = 1u128 << (10 * power);
            if bytes >= unit && bytes.is_multiple_of(unit) {
                return format!("{}{suffix}", bytes / unit);
            }
        }
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(text: &str) -> Option<u128> {
        Quantity::parse(text).map(|q| q.0)
    }

    #[test]
    fn reads_what_kubernetes_reads() {
        assert_eq!(millis("4"), Some(4000));
        assert_eq!(millis("500m"), Some(500));
        assert_eq!(millis("0.5"), Some(500));
        assert_eq!(millis(".25"), Some(250));
        assert_eq!(millis("1.5k"), Some(1_500_000));
        assert_eq!(millis("128Mi"), Some(128 * 1024 * 1024 * 1000));
        assert_eq!(millis("1G"), Some(1_000_000_000_000));
        assert_eq!(millis("1e3"), Some(1_000_000));
        assert_eq!(millis("1E-3"), Some(1));
        assert_eq!(millis("100n"), Some(1), "rounded up");
        assert_eq!(millis("0.5Gi"), Some(512 * 1024 * 1024 * 1000));
        for bad in [
            "",
            "m",
            "-1",
            "1.2.3",
            "1 G",
            "1g",
            "1Xi",
            "1e",
            "1e999",
            "0x10",
            "+1",
            "99999999999999999999999999999999Ei",
        ] {
            assert_eq!(millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn shows_kubernetes_notation() {
        let q = |text| Quantity::parse(text).unwrap();
        assert_eq!(q("4").cpu(), "4");
        assert_eq!(q("0.25").cpu(), "250m");
        assert_eq!(q("8Gi").memory(), "8Gi");
        assert_eq!(q("8192Mi").memory(), "8Gi");
        assert_eq!(q("640Mi").memory(), "640Mi");
        assert_eq!(q("1G").memory(), "1000000000");
        assert_eq!(q("128Mi").times(3).memory(), "384Mi");
        assert_eq!(q("100m").plus(q("1")).cpu(), "1100m");
    }
}
