//! Money: an integer count of minor units plus a currency (SPEC §0). No floating point anywhere.
//!
//! Amounts are `i128` minor units: 10^12 major units of an 8-decimal currency is 10^20 minor units, past `u64`,
//! and a fee computation multiplies that by basis points again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest amount, in major units, that any currency may carry (SPEC §0: "up to 10^12 major units").
pub const MAX_MAJOR_UNITS: i128 = 1_000_000_000_000;

/// A supported currency. Each has a fixed number of decimals (its exponent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    /// US dollar, 2 decimals.
    Usd,
    /// Tether, 6 decimals.
    Usdt,
    /// USD Coin, 6 decimals.
    Usdc,
    /// Bitcoin, 8 decimals.
    Btc,
}

impl Currency {
    /// Every supported currency, in a fixed order.
    pub const ALL: [Currency; 4] = [Currency::Usd, Currency::Usdt, Currency::Usdc, Currency::Btc];

    /// Number of decimal places of the minor unit.
    pub const fn exponent(self) -> u32 {
        match self {
            Currency::Usd => 2,
            Currency::Usdt | Currency::Usdc => 6,
            Currency::Btc => 8,
        }
    }

    /// Minor units in one major unit.
    pub const fn minor_per_major(self) -> i128 {
        10i128.pow(self.exponent())
    }

    /// The currency code as written on the wire.
    pub const fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Usdt => "USDT",
            Currency::Usdc => "USDC",
            Currency::Btc => "BTC",
        }
    }

    /// Parses a currency code (exact, upper case).
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .ok_or_else(|| MoneyError::UnknownCurrency { code: code.to_owned() })
    }

    /// The largest amount in minor units this currency may carry.
    pub const fn max_minor(self) -> i128 {
        MAX_MAJOR_UNITS * self.minor_per_major()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why an amount or currency was refused. Each variant carries the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not a decimal string of the form `123`, `123.4`, `0.50`.
    #[error("malformed amount {input:?}: expected digits with an optional '.' and fraction, like \"125.50\"")]
    Malformed {
        /// The text that was given.
        input: String,
    },
    /// A leading minus sign.
    #[error("negative amount {input:?}: amounts are never negative")]
    Negative {
        /// The text that was given.
        input: String,
    },
    /// More decimals than the currency has.
    #[error("amount {input:?} has more than {exponent} decimals, the precision of {currency}")]
    TooPrecise {
        /// The text that was given.
        input: String,
        /// The currency it was parsed for.
        currency: Currency,
        /// That currency's number of decimals.
        exponent: u32,
    },
    /// Above 10^12 major units.
    #[error("amount {input:?} exceeds the maximum of 10^12 {currency}")]
    Overflow {
        /// The text that was given.
        input: String,
        /// The currency it was parsed for.
        currency: Currency,
    },
    /// A currency code that is not supported.
    #[error("unknown currency {code:?}: supported are USD, USDT, USDC, BTC")]
    UnknownCurrency {
        /// The code that was given.
        code: String,
    },
    /// Two amounts of different currencies were combined.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch {
        /// The first currency.
        left: Currency,
        /// The second currency.
        right: Currency,
    },
}

/// An exact amount of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Count of minor units (cents, satoshis, …). Never negative for amounts on the wire.
    pub minor: i128,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// An amount from minor units.
    pub const fn from_minor(minor: i128, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Zero of a currency.
    pub const fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    /// Parses a wire decimal string such as `"125.50"` exactly.
    ///
    /// Accepted: one or more digits, optionally `.` and one or more digits; no sign, exponent, spaces or
    /// separators. Trailing zeros beyond the currency's precision are accepted (`"1.500"` in USD is 150 cents),
    /// any other extra digit is [`MoneyError::TooPrecise`].
    pub fn parse(input: &str, currency: Currency) -> Result<Money, MoneyError> {
        let malformed = || MoneyError::Malformed { input: input.to_owned() };
        if input.starts_with('-') {
            return Err(MoneyError::Negative { input: input.to_owned() });
        }
        let (whole, fraction) = match input.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (input, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err(malformed());
        }
        let exponent = currency.exponent() as usize;
        let fraction = fraction.unwrap_or("");
        let (kept, extra) = fraction.split_at(fraction.len().min(exponent));
        if extra.bytes().any(|b| b != b'0') {
            return Err(MoneyError::TooPrecise { input: input.to_owned(), currency, exponent: currency.exponent() });
        }
        let overflow = || MoneyError::Overflow { input: input.to_owned(), currency };
        let whole = whole.trim_start_matches('0');
        // 10^12 has 13 digits; anything longer is over the limit and could overflow i128 parsing.
        if whole.len() > 13 {
            return Err(overflow());
        }
        let major: i128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| malformed())? };
        let mut minor_part: i128 = if kept.is_empty() { 0 } else { kept.parse().map_err(|_| malformed())? };
        for _ in kept.len()..exponent {
            minor_part *= 10;
        }
        let minor = major * currency.minor_per_major() + minor_part;
        if minor > currency.max_minor() {
            return Err(overflow());
        }
        Ok(Money { minor, currency })
    }

    /// Parses an amount and a currency code together.
    pub fn parse_with_code(amount: &str, code: &str) -> Result<Money, MoneyError> {
        Money::parse(amount, Currency::parse(code)?)
    }

    /// The wire form: always with exactly the currency's number of decimals (`"125.50"`, `"0.00100000"`).
    pub fn to_decimal_string(self) -> String {
        let per = self.currency.minor_per_major();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let per = per.unsigned_abs();
        let exponent = self.currency.exponent() as usize;
        format!("{sign}{}.{:0exponent$}", abs / per, abs % per)
    }

    /// Sum of two amounts of the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Ok(Money { minor: self.minor + other.minor, currency: self.currency })
    }

    /// Difference of two amounts of the same currency.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Ok(Money { minor: self.minor - other.minor, currency: self.currency })
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch { left: self.currency, right: other.currency })
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

/// Basis points: hundredths of a percent.
pub type BasisPoints = u32;

/// The platform fee on a release: `floor(amount * fee_bps / 10_000)` (SPEC §0). Rounds down, never up.
pub fn platform_fee(amount_minor: i128, fee_bps: BasisPoints) -> i128 {
    // amount ≤ 10^20 and fee_bps ≤ 10^4 keep the product far below i128::MAX; amounts are never negative.
    (amount_minor * i128::from(fee_bps)).div_euclid(10_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(Money::parse("125.50", Currency::Usd).unwrap().minor, 12_550);
        assert_eq!(Money::parse("125.5", Currency::Usd).unwrap().minor, 12_550);
        assert_eq!(Money::parse("125", Currency::Usd).unwrap().minor, 12_500);
        assert_eq!(Money::parse("0.00000001", Currency::Btc).unwrap().minor, 1);
        assert_eq!(Money::parse("1.500", Currency::Usd).unwrap().minor, 150);
        assert_eq!(Money::parse("007.10", Currency::Usdt).unwrap().minor, 7_100_000);
    }

    #[test]
    fn largest_amount_does_not_overflow() {
        let max = Money::parse("1000000000000.00000000", Currency::Btc).unwrap();
        assert_eq!(max.minor, 100_000_000_000_000_000_000);
        assert_eq!(max.to_decimal_string(), "1000000000000.00000000");
        assert_eq!(platform_fee(max.minor, 10_000), max.minor);
        assert!(matches!(Money::parse("1000000000000.00000001", Currency::Btc), Err(MoneyError::Overflow { .. })));
        assert!(matches!(
            Money::parse("99999999999999999999999999999999999999999", Currency::Usd),
            Err(MoneyError::Overflow { .. })
        ));
    }

    #[test]
    fn refuses_bad_input_with_typed_errors() {
        let usd = Currency::Usd;
        for bad in ["", ".", "1.", ".5", "1,00", "1e3", " 1", "1 ", "+1", "0x10", "1.2.3", "١٢"] {
            assert!(matches!(Money::parse(bad, usd), Err(MoneyError::Malformed { .. })), "{bad:?}");
        }
        assert_eq!(Money::parse("-1", usd), Err(MoneyError::Negative { input: "-1".into() }));
        assert!(matches!(Money::parse("1.001", usd), Err(MoneyError::TooPrecise { exponent: 2, .. })));
        assert_eq!(Currency::parse("EUR"), Err(MoneyError::UnknownCurrency { code: "EUR".into() }));
        assert_eq!(Currency::parse("usd"), Err(MoneyError::UnknownCurrency { code: "usd".into() }));
        let err = Money::parse("12.345", usd).unwrap_err().to_string();
        assert!(err.contains("12.345") && err.contains("USD"), "{err}");
    }

    #[test]
    fn fee_rounds_down() {
        assert_eq!(platform_fee(12_550, 250), 313); // 313.75 → 313
        assert_eq!(platform_fee(39, 250), 0);
        assert_eq!(platform_fee(40, 250), 1);
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            for c in Currency::ALL { let _ = Money::parse(&s, c); }
        }

        #[test]
        fn parse_never_panics_on_numeric_shapes(s in "-?[0-9]{0,45}(\\.[0-9]{0,12})?") {
            for c in Currency::ALL { let _ = Money::parse(&s, c); }
        }

        #[test]
        fn format_then_parse_round_trips(minor in 0i128..=100_000_000_000_000_000_000i128, c in 0usize..4) {
            let c = Currency::ALL[c];
            let minor = minor.min(c.max_minor());
            let m = Money::from_minor(minor, c);
            prop_assert_eq!(Money::parse(&m.to_decimal_string(), c).unwrap(), m);
        }

        #[test]
        fn fee_plus_payout_is_amount(minor in 0i128..=100_000_000_000_000_000_000i128, bps in 0u32..=10_000) {
            let fee = platform_fee(minor, bps);
            prop_assert!(fee >= 0 && fee <= minor);
            prop_assert!(fee * 10_000 <= minor * i128::from(bps));
            prop_assert!((fee + 1) * 10_000 > minor * i128::from(bps));
        }
    }
}
