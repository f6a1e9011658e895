//! Symbolic dimensions: integer expressions over free dims (`B`, a block's `c`), kept in a
//! canonical form so that two spellings of one size compare equal (`B * 784 == 784 * B`,
//! `(H / 4) * 4 == H` when `H` is bound to 28).
//!
//! A dim is a polynomial with integer coefficients over *atoms*: free symbols and the
//! floor-quotients / remainders that cannot be simplified further. Bound dims never appear:
//! the resolver substitutes their values before any shape is built.

use std::collections::BTreeMap;
use std::fmt;

/// An indivisible factor of a monomial.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    Sym(String),
    /// `floor(a / b)` that did not simplify.
    Div(Box<Dim>, Box<Dim>),
    /// `a mod b` (floor) that did not simplify.
    Mod(Box<Dim>, Box<Dim>),
}

/// A product of atoms with their powers; the empty monomial is the constant 1.
type Monomial = BTreeMap<Atom, u32>;

/// A canonical integer polynomial over atoms.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dim {
    terms: BTreeMap<Monomial, i64>,
}

/// Arithmetic that would leave `i64` (a shape no machine could hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

/// Why a division of dims failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DivError {
    ByZero,
    Overflow,
}

impl Dim {
    pub fn constant(value: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if value != 0 {
            terms.insert(Monomial::new(), value);
        }
        Dim { terms }
    }

    pub fn sym(name: &str) -> Dim {
        Dim::atom(Atom::Sym(name.to_string()))
    }

    fn atom(atom: Atom) -> Dim {
        let mut mono = Monomial::new();
        mono.insert(atom, 1);
        Dim { terms: BTreeMap::from([(mono, 1)]) }
    }

    /// The value, when the dim has no free symbol.
    pub fn as_const(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Monomial::new()).copied(),
            _ => None,
        }
    }

    /// The free symbols this dim mentions, in order.
    pub fn symbols(&self) -> Vec<String> {
        let mut out = Vec::new();
        for mono in self.terms.keys() {
            for atom in mono.keys() {
                atom.collect_symbols(&mut out);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The polynomial's terms: each coefficient with its atoms (as dims of their own) and
    /// their powers, in canonical order. What a dim's value is built from when it meets a
    /// tensor before its symbols are bound.
    pub fn monomials(&self) -> Vec<(i64, Vec<(Dim, u32)>)> {
        let term = |mono: &Monomial| mono.iter().map(|(a, p)| (Dim::atom(a.clone()), *p)).collect();
        self.terms.iter().map(|(mono, coeff)| (*coeff, term(mono))).collect()
    }

    pub fn add(&self, other: &Dim) -> Result<Dim, Overflow> {
        let mut terms = self.terms.clone();
        for (mono, coeff) in &other.terms {
            let entry = terms.entry(mono.clone()).or_insert(0);
            *entry = entry.checked_add(*coeff).ok_or(Overflow)?;
            if *entry == 0 {
                terms.remove(mono);
            }
        }
        Ok(Dim { terms })
    }

    pub fn neg(&self) -> Result<Dim, Overflow> {
        let mut terms = BTreeMap::new();
        for (mono, coeff) in &self.terms {
            terms.insert(mono.clone(), coeff.checked_neg().ok_or(Overflow)?);
        }
        Ok(Dim { terms })
    }

    pub fn sub(&self, other: &Dim) -> Result<Dim, Overflow> {
        self.add(&other.neg()?)
    }

    pub fn mul(&self, other: &Dim) -> Result<Dim, Overflow> {
        let mut out = Dim::default();
        for (ma, ca) in &self.terms {
            for (mb, cb) in &other.terms {
                let mut mono = ma.clone();
                for (atom, power) in mb {
                    let entry = mono.entry(atom.clone()).or_insert(0);
                    *entry = entry.checked_add(*power).ok_or(Overflow)?;
                }
                let coeff = ca.checked_mul(*cb).ok_or(Overflow)?;
                out = out.add(&Dim { terms: BTreeMap::from([(mono, coeff)]) })?;
            }
        }
        Ok(out)
    }

    /// Floor division. Exact when every coefficient is divisible by a constant divisor or the
    /// divisor is a factor of the dividend; otherwise an opaque `Div` atom.
    pub fn div(&self, other: &Dim) -> Result<Dim, DivError> {
        if let Some(d) = other.as_const() {
            if d == 0 {
                return Err(DivError::ByZero);
            }
            if let Some(n) = self.as_const() {
                return Ok(Dim::constant(n.div_euclid(d) - i64::from(d < 0 && n.rem_euclid(d) != 0)));
            }
            if self.terms.values().all(|c| c % d == 0) {
                let terms = self.terms.iter().map(|(m, c)| (m.clone(), c / d)).collect();
                return Ok(Dim { terms });
            }
        } else if let Some(quotient) = self.exact_quotient(other) {
            return Ok(quotient);
        }
        Ok(Dim::atom(Atom::Div(Box::new(self.clone()), Box::new(other.clone()))))
    }

    /// Floor remainder, `a - b * floor(a / b)`.
    pub fn rem(&self, other: &Dim) -> Result<Dim, DivError> {
        if let (Some(n), Some(d)) = (self.as_const(), other.as_const()) {
            if d == 0 {
                return Err(DivError::ByZero);
            }
            let r = n.rem_euclid(d);
            return Ok(Dim::constant(if d < 0 && r != 0 { r + d } else { r }));
        }
        if other.as_const() == Some(0) {
            return Err(DivError::ByZero);
        }
        if self.div(other)?.mul(other).map_err(|_| DivError::Overflow)? == *self {
            return Ok(Dim::constant(0));
        }
        Ok(Dim::atom(Atom::Mod(Box::new(self.clone()), Box::new(other.clone()))))
    }

    /// `self / other` when `other` is a single monomial dividing every term.
    fn exact_quotient(&self, other: &Dim) -> Option<Dim> {
        if other.terms.len() != 1 {
            return None;
        }
        let (divisor, dcoeff) = other.terms.iter().next()?;
        let mut out = BTreeMap::new();
        for (mono, coeff) in &self.terms {
            if coeff % dcoeff != 0 {
                return None;
            }
            let mut rest = mono.clone();
            for (atom, power) in divisor {
                let have = rest.get(atom).copied().unwrap_or(0);
                if have < *power {
                    return None;
                }
                if have == *power {
                    rest.remove(atom);
                } else {
                    rest.insert(atom.clone(), have - power);
                }
            }
            out.insert(rest, coeff / dcoeff);
        }
        Some(Dim { terms: out })
    }

    /// Substitutes symbols; `None` if a symbol is unbound, a division is by zero or the value
    /// overflows.
    pub fn eval(&self, bindings: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        let mut total: i64 = 0;
        for (mono, coeff) in &self.terms {
            let mut term = *coeff;
            for (atom, power) in mono {
                let v = atom.eval(bindings)?;
                for _ in 0..*power {
                    term = term.checked_mul(v)?;
                }
            }
            total = total.checked_add(term)?;
        }
        Some(total)
    }

    /// Replaces free symbols by dims (instantiating a block's generic `c`, `h`).
    pub fn substitute(&self, map: &dyn Fn(&str) -> Option<Dim>) -> Result<Dim, DivError> {
        let mut total = Dim::default();
        for (mono, coeff) in &self.terms {
            let mut term = Dim::constant(*coeff);
            for (atom, power) in mono {
                let v = match atom {
                    Atom::Sym(s) => map(s).unwrap_or_else(|| Dim::sym(s)),
                    Atom::Div(a, b) => a.substitute(map)?.div(&b.substitute(map)?)?,
                    Atom::Mod(a, b) => a.substitute(map)?.rem(&b.substitute(map)?)?,
                };
                for _ in 0..*power {
                    term = term.mul(&v).map_err(|_| DivError::Overflow)?;
                }
            }
            total = total.add(&term).map_err(|_| DivError::Overflow)?;
        }
        Ok(total)
    }
}

impl Atom {
    fn collect_symbols(&self, out: &mut Vec<String>) {
        match self {
            Atom::Sym(s) => out.push(s.clone()),
            Atom::Div(a, b) | Atom::Mod(a, b) => {
                out.extend(a.symbols());
                out.extend(b.symbols());
            }
        }
    }

    fn eval(&self, bindings: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        match self {
            Atom::Sym(s) => bindings(s),
            Atom::Div(a, b) => {
                let (a, b) = (a.eval(bindings)?, b.eval(bindings)?);
                if b == 0 { None } else { Some(a.div_euclid(b) - i64::from(b < 0 && a.rem_euclid(b) != 0)) }
            }
            Atom::Mod(a, b) => {
                let (a, b) = (a.eval(bindings)?, b.eval(bindings)?);
                if b == 0 {
                    return None;
                }
                let r = a.rem_euclid(b);
                Some(if b < 0 && r != 0 { r + b } else { r })
            }
        }
    }
}

impl From<i64> for Dim {
    fn from(value: i64) -> Dim {
        Dim::constant(value)
    }
}

/// Prints highest-degree terms first, constants last: `2 * B + 1`, `B * H`, `floor(B / 3)`.
impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        let mut terms: Vec<(&Monomial, &i64)> = self.terms.iter().collect();
        terms.sort_by(|(a, _), (b, _)| {
            let degree = |m: &Monomial| m.values().sum::<u32>();
            degree(b).cmp(&degree(a)).then(a.cmp(b))
        });
        for (i, (mono, coeff)) in terms.into_iter().enumerate() {
            let magnitude = coeff.unsigned_abs();
            if i == 0 {
                if *coeff < 0 {
                    f.write_str("-")?;
                }
            } else {
                f.write_str(if *coeff < 0 { " - " } else { " + " })?;
            }
            let mut factors: Vec<String> = Vec::new();
            if magnitude != 1 || mono.is_empty() {
                factors.push(magnitude.to_string());
            }
            for (atom, power) in mono {
                let text = match atom {
                    Atom::Sym(s) => s.clone(),
                    Atom::Div(a, b) => format!("({a}) / ({b})"),
                    Atom::Mod(a, b) => format!("({a}) % ({b})"),
                };
                for _ in 0..*power {
                    factors.push(text.clone());
                }
            }
            f.write_str(&factors.join(" * "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn b() -> Dim {
        Dim::sym("B")
    }
    fn c(v: i64) -> Dim {
        Dim::constant(v)
    }

    #[test]
    fn products_commute_and_constants_fold() {
        let x = b().mul(&c(784)).unwrap();
        let y = c(28).mul(&c(28)).unwrap().mul(&b()).unwrap();
        assert_eq!(x, y);
        assert_eq!(x.to_string(), "784 * B");
    }

    #[test]
    fn sums_cancel() {
        let x = b().add(&c(1)).unwrap().sub(&b()).unwrap();
        assert_eq!(x.as_const(), Some(1));
        assert_eq!(b().sub(&b()).unwrap().to_string(), "0");
    }

    #[test]
    fn exact_division_simplifies() {
        let two_b = c(2).mul(&b()).unwrap();
        assert_eq!(two_b.div(&c(2)).unwrap(), b());
        assert_eq!(two_b.div(&b()).unwrap(), c(2));
        assert_eq!(c(28).div(&c(4)).unwrap(), c(7));
        assert_eq!(c(-7).div(&c(2)).unwrap(), c(-4));
        assert_eq!(c(7).rem(&c(-2)).unwrap(), c(-1));
    }

    #[test]
    fn inexact_division_is_an_atom_that_evaluates() {
        let q = b().div(&c(3)).unwrap();
        assert_eq!(q.to_string(), "(B) / (3)");
        assert_eq!(q.eval(&|s| (s == "B").then_some(10)), Some(3));
        assert_eq!(b().rem(&c(3)).unwrap().eval(&|_| Some(10)), Some(1));
        assert_eq!(c(2).mul(&b()).unwrap().rem(&c(2)).unwrap(), c(0));
    }

    #[test]
    fn division_by_zero_and_overflow_are_errors() {
        assert_eq!(b().div(&c(0)), Err(DivError::ByZero));
        assert_eq!(c(1).rem(&c(0)), Err(DivError::ByZero));
        assert_eq!(c(i64::MAX).add(&c(1)), Err(Overflow));
        assert_eq!(c(1 << 40).mul(&c(1 << 40)), Err(Overflow));
    }

    #[test]
    fn substitution_instantiates_generic_dims() {
        let shape = Dim::sym("h").div(&c(2)).unwrap();
        let at = shape.substitute(&|s| (s == "h").then(|| c(28))).unwrap();
        assert_eq!(at, c(14));
    }
}
