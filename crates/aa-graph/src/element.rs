//! Chemical elements: atomic numbers, symbols and the valences used to count implicit hydrogens.

use serde::{Deserialize, Serialize};

const SYMBOLS: [&str; 87] = [
    "", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",
    "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce",
    "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir",
    "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn",
];

/// A chemical element, stored as its atomic number (1 = H … 86 = Rn).
///
/// Serialises as its symbol (`"C"`, `"Cl"`), which is what structure files and people write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element(u8);

impl Element {
    /// Hydrogen.
    pub const H: Element = Element(1);
    /// Carbon.
    pub const C: Element = Element(6);
    /// Nitrogen.
    pub const N: Element = Element(7);
    /// Oxygen.
    pub const O: Element = Element(8);
    /// Fluorine.
    pub const F: Element = Element(9);
    /// Phosphorus.
    pub const P: Element = Element(15);
    /// Sulfur.
    pub const S: Element = Element(16);
    /// Chlorine.
    pub const CL: Element = Element(17);
    /// Bromine.
    pub const BR: Element = Element(35);
    /// Iodine.
    pub const I: Element = Element(53);

    /// The element with atomic number `z`, if `1 <= z <= 86`.
    pub fn from_atomic_number(z: u8) -> Option<Element> {
        (1..SYMBOLS.len() as u8).contains(&z).then_some(Element(z))
    }

    /// Parses a symbol case-insensitively (`"CL"`, `"Cl"` and `"cl"` are chlorine), as PDB files
    /// write them upper-case.
    pub fn from_symbol(symbol: &str) -> Option<Element> {
        let s = symbol.trim();
        SYMBOLS.iter().position(|&x| !x.is_empty() && x.eq_ignore_ascii_case(s)).map(|z| Element(z as u8))
    }

    /// Atomic number.
    pub fn atomic_number(self) -> u8 {
        self.0
    }

    /// Element symbol with standard capitalisation.
    pub fn symbol(self) -> &'static str {
        SYMBOLS[self.0 as usize]
    }

    /// The usual neutral valence used to fill implicit hydrogens (C 4, N 3, O 2, halogens 1,
    /// P 3, S 2 …). Hypervalent atoms (sulfate S, phosphate P) are given their valence explicitly
    /// by the code that builds them.
    pub fn default_valence(self) -> u8 {
        match self.0 {
            1 | 9 | 17 | 35 | 53 => 1,
            5 | 13 => 3,
            6 | 14 => 4,
            7 | 15 | 33 => 3,
            8 | 16 | 34 => 2,
            _ => 0,
        }
    }
}

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Serialize for Element {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.symbol())
    }
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Element::from_symbol(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown element symbol {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_round_trip() {
        for z in 1..=86u8 {
            let e = Element::from_atomic_number(z).unwrap();
            assert_eq!(Element::from_symbol(e.symbol()), Some(e));
            assert_eq!(Element::from_symbol(&e.symbol().to_uppercase()), Some(e));
        }
        assert_eq!(Element::from_symbol("Xx"), None);
        assert_eq!(Element::from_atomic_number(0), None);
        assert_eq!(Element::from_atomic_number(87), None);
        assert_eq!(Element::CL.symbol(), "Cl");
    }
}
