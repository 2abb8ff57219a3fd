//! A small parser for Kubernetes resource quantities (`250m`, `1.5Gi`, `1e3`).
//!
//! The grammar follows `k8s.io/apimachinery/pkg/api/resource`:
//!
//! ```text
//! quantity = [sign] digits [ "." digits ] suffix
//! suffix   = binarySI | decimalSI | decimalExponent
//! binarySI = Ki | Mi | Gi | Ti | Pi | Ei
//! decimalSI = n | u | m | "" | k | M | G | T | P | E
//! decimalExponent = ( e | E ) [sign] digits
//! ```
//!
//! Values are kept exactly (a mantissa and a power of ten), so comparisons
//! such as "requests <= limits" are exact; [`Quantity::as_millis`] and
//! [`Quantity::as_bytes`] round up like Kubernetes' `MilliValue()` and
//! `Value()`.

use std::cmp::Ordering;
use std::fmt;

/// Most significant digits accepted in a quantity's number. Together with the
/// largest binary suffix (2^60) this keeps every value inside an `i128`.
const MAX_DIGITS: usize = 20;

/// Largest absolute decimal exponent accepted (`1e308` is far beyond any
/// resource amount; Kubernetes itself caps what it can represent).
const MAX_EXPONENT: i32 = 300;

/// An exactly represented Kubernetes quantity: `mantissa * 10^scale`.
///
/// The representation is normalised (no trailing zeros in the mantissa, zero
/// is `0 * 10^0`), so the derived equality agrees with the ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quantity {
    mantissa: i128,
    scale: i32,
}

impl Quantity {
    /// Builds a normalised quantity from `mantissa * 10^scale`.
    fn new(mut mantissa: i128, mut scale: i32) -> Self {
        if mantissa == 0 {
            return Quantity {
                mantissa: 0,
                scale: 0,
            };
        }
        while mantissa % 10 == 0 {
            mantissa /= 10;
            scale += 1;
        }
        Quantity { mantissa, scale }
    }

    /// The value in thousandths, rounded up (Kubernetes' `MilliValue()`):
    /// for CPU `"250m"` is 250, `"1"` is 1000 and `"0.5"` is 500.
    /// Saturates at the bounds of `i64`.
    pub fn as_millis(&self) -> i64 {
        self.scaled_ceil(3)
    }

    /// The value in units, rounded up (Kubernetes' `Value()`): for memory
    /// `"32Mi"` is 33554432, `"1G"` is 1000000000 and `"1e3"` is 1000.
    /// Saturates at the bounds of `i64`.
    pub fn as_bytes(&self) -> i64 {
        self.scaled_ceil(0)
    }

    /// True when the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// True when the quantity is exactly zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// `ceil(self * 10^extra)` as an `i64`, saturating.
    fn scaled_ceil(&self, extra: i32) -> i64 {
        let scale = self.scale + extra;
        let value = if scale >= 0 {
            match pow10(scale).and_then(|p| self.mantissa.checked_mul(p)) {
                Some(v) => v,
                None if self.mantissa < 0 => i128::MIN,
                None => i128::MAX,
            }
        } else {
            match pow10(-scale) {
                Some(p) => ceil_div(self.mantissa, p),
                // The divisor exceeds any mantissa: the magnitude is below one.
                None if self.mantissa > 0 => 1,
                None => 0,
            }
        };
        i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = self.mantissa.signum().cmp(&other.mantissa.signum());
        if sign != Ordering::Equal || self.mantissa == 0 {
            return sign;
        }
        // Same sign, both non-zero: bring both to the smaller scale. If that
        // overflows, the side being scaled up has the larger magnitude.
        let (a, b, swapped) = if self.scale >= other.scale {
            (self, other, false)
        } else {
            (other, self, true)
        };
        let diff = a.scale - b.scale;
        let ordering = match pow10(diff).and_then(|p| a.mantissa.checked_mul(p)) {
            Some(scaled) => scaled.cmp(&b.mantissa),
            None if a.mantissa > 0 => Ordering::Greater,
            None => Ordering::Less,
        };
        if swapped {
            ordering.reverse()
        } else {
            ordering
        }
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Quantity {
    /// A plain decimal rendering (`0.25`, `1000`), not Kubernetes' canonical
    /// suffixed form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        if self.scale >= 0 {
            let zeros = usize::try_from(self.scale).unwrap_or(0);
            write!(f, "{sign}{digits}{}", "0".repeat(zeros))
        } else {
            let frac = usize::try_from(-self.scale).unwrap_or(0);
            if digits.len() > frac {
                let (int, dec) = digits.split_at(digits.len() - frac);
                write!(f, "{sign}{int}.{dec}")
            } else {
                write!(f, "{sign}0.{}{digits}", "0".repeat(frac - digits.len()))
            }
        }
    }
}

impl std::str::FromStr for Quantity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_quantity(s)
    }
}

/// Parses a Kubernetes quantity such as `250m`, `0.5`, `64Mi`, `1G` or `1e3`.
///
/// The error is a human-readable reason suitable for a validation message.
pub fn parse_quantity(s: &str) -> Result<Quantity, String> {
    if s.is_empty() {
        return Err("quantity is empty".to_string());
    }
    let bytes = s.as_bytes();
    let mut pos = 0;

    let negative = match bytes.first() {
        Some(b'-') => {
            pos += 1;
            true
        }
        Some(b'+') => {
            pos += 1;
            false
        }
        _ => false,
    };

    // The number: digits with at most one decimal point.
    let number_start = pos;
    while pos < bytes.len() && (bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
        pos += 1;
    }
    let number = &s[number_start..pos];
    let suffix = &s[pos..];
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac_part.contains('.') {
        return Err(format!("{s:?}: more than one decimal point"));
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(format!(
            "{s:?}: must start with a number (e.g. 250m, 0.5, 64Mi, 1G)"
        ));
    }

    // Significant digits, ignoring leading zeros and trailing fractional zeros.
    let frac_trimmed = frac_part.trim_end_matches('0');
    let all_digits = format!("{int_part}{frac_trimmed}");
    let significant = all_digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err(format!(
            "{s:?}: too many significant digits (at most {MAX_DIGITS})"
        ));
    }
    let mut mantissa: i128 = 0;
    for d in significant.bytes() {
        mantissa = mantissa * 10 + i128::from(d - b'0');
    }
    let frac_len = i32::try_from(frac_trimmed.len()).map_err(|_| format!("{s:?}: too long"))?;
    let mut scale = -frac_len;

    match suffix {
        "" => {}
        "n" => scale -= 9,
        "u" => scale -= 6,
        "m" => scale -= 3,
        "k" => scale += 3,
        "M" => scale += 6,
        "G" => scale += 9,
        "T" => scale += 12,
        "P" => scale += 15,
        "E" => scale += 18,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = match suffix {
                "Ki" => 10,
                "Mi" => 20,
                "Gi" => 30,
                "Ti" => 40,
                "Pi" => 50,
                _ => 60,
            };
            // At most 20 digits (< 2^67) times 2^60 fits in an i128.
            mantissa <<= power;
        }
        _ if suffix.starts_with(['e', 'E']) => {
            let exp = &suffix[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(unknown_suffix(s, suffix));
            }
            let exponent: i32 = exp
                .parse()
                .ok()
                .filter(|e: &i32| e.abs() <= MAX_EXPONENT)
                .ok_or_else(|| format!("{s:?}: exponent out of range"))?;
            scale += exponent;
        }
        _ => return Err(unknown_suffix(s, suffix)),
    }

    if negative {
        mantissa = -mantissa;
    }
    Ok(Quantity::new(mantissa, scale))
}

fn unknown_suffix(s: &str, suffix: &str) -> String {
    format!(
        "{s:?}: unknown suffix {suffix:?} (use one of n, u, m, k, M, G, T, P, E, \
         Ki, Mi, Gi, Ti, Pi, Ei, or an exponent such as e3)"
    )
}

/// `10^exp` as an `i128`, or `None` when it does not fit.
fn pow10(exp: i32) -> Option<i128> {
    u32::try_from(exp).ok().and_then(|e| 10i128.checked_pow(e))
}

/// Division rounding towards positive infinity.
fn ceil_div(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d > 0 {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        parse_quantity(s).unwrap()
    }

    #[test]
    fn cpu_millis() {
        assert_eq!(q("250m").as_millis(), 250);
        assert_eq!(q("1").as_millis(), 1000);
        assert_eq!(q("0.5").as_millis(), 500);
        assert_eq!(q(".5").as_millis(), 500);
        assert_eq!(q("2.").as_millis(), 2000);
        assert_eq!(q("+1.5").as_millis(), 1500);
        assert_eq!(q("100u").as_millis(), 1, "rounds up");
        assert_eq!(q("1n").as_millis(), 1, "rounds up");
        assert_eq!(q("0").as_millis(), 0);
    }

    #[test]
    fn memory_bytes() {
        assert_eq!(q("32Mi").as_bytes(), 33_554_432);
        assert_eq!(q("1G").as_bytes(), 1_000_000_000);
        assert_eq!(q("1e3").as_bytes(), 1000);
        assert_eq!(q("1E3").as_bytes(), 1000);
        assert_eq!(q("1E").as_bytes(), 1_000_000_000_000_000_000);
        assert_eq!(q("1.5Gi").as_bytes(), 1_610_612_736);
        assert_eq!(q("1Ki").as_bytes(), 1024);
        assert_eq!(q("1Ei").as_bytes(), 1 << 60);
        assert_eq!(q("128974848").as_bytes(), 128_974_848);
        assert_eq!(q("129e6").as_bytes(), 129_000_000);
        assert_eq!(q("123k").as_bytes(), 123_000);
        assert_eq!(q("1.5").as_bytes(), 2, "rounds up");
        assert_eq!(q("12e-1").as_bytes(), 2);
        assert_eq!(q("-1").as_bytes(), -1);
    }

    #[test]
    fn saturates() {
        assert_eq!(q("100Ei").as_bytes(), i64::MAX);
        assert_eq!(q("-100Ei").as_bytes(), i64::MIN);
        assert_eq!(q("1e-200").as_bytes(), 1);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "abc", "1.2.3", "1x", "1KiB", "1 Gi", " 1", "1e", "1e+", "Mi", ".", "1mi", "--1",
            "1e999",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse_quantity("1x").unwrap_err().contains("unknown suffix"));
    }

    #[test]
    fn exact_comparison() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1k"), q("1e3"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("500m") < q("1"));
        assert!(q("-1") < q("0"));
        assert!(q("-2") < q("-1"));
        assert!(q("1e300") > q("1Ei"));
        assert!(q("1e-300") < q("1n"));
        assert!(q("0.1n") < q("1n"));
    }

    #[test]
    fn display_is_plain_decimal() {
        assert_eq!(q("250m").to_string(), "0.25");
        assert_eq!(q("1k").to_string(), "1000");
        assert_eq!(q("-5m").to_string(), "-0.005");
        assert_eq!(q("0").to_string(), "0");
    }
}
