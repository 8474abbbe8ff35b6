//! Monosaccharide names: the core vocabulary and the grammar of modifications.
//!
//! A residue name such as `D-Araf5Me`, `Neu5,9Ac2`, `GlcNAc6S-ol` or `LDManHepOPEtN` is read as
//! `[D-|L-][deoxy/anhydro prefixes][core][f|p][modifications…][-ol|-onic|-ulosaric]`.
//! Stereochemical descriptors (`D-`, `L-`, `LD`, `4e`, `Ara`-in-`AraHex`) do not change the
//! molecule's constitution and are accepted and ignored; everything that changes atoms or bonds
//! is recorded in a [`ResidueSpec`].

/// A monosaccharide core: its carbon backbone and the positions that are not plain hydroxyls.
#[derive(Debug)]
pub struct CoreDef {
    /// Name as written in IUPAC-condensed (`Glc`, `Neu`, `Kdo`).
    pub name: &'static str,
    /// Backbone carbons C1..Cn.
    pub carbons: u8,
    /// Anomeric carbon (1 for aldoses, 2 for ketoses/ulosonic acids, 0 for cyclitols).
    pub anomeric: u8,
    /// Deoxy positions (no heteroatom).
    pub deoxy: &'static [u8],
    /// Amino positions (NH2 instead of OH).
    pub amino: &'static [u8],
    /// Carboxylic-acid positions (terminal carbons that are COOH).
    pub acid: &'static [u8],
    /// Furanose unless written otherwise (tetroses, keto-pentoses).
    pub furanose_default: bool,
    /// Carbocycle (inositol): C1..Cn ring, no ring oxygen, no anomeric centre.
    pub carbocycle: bool,
    /// Modifications implied by the name, in the same grammar (`Mur` = 3-O-lactyl GlcN).
    pub implied: &'static str,
}

macro_rules! core {
    ($name:expr, $n:expr, $an:expr, deoxy $d:expr, amino $am:expr, acid $ac:expr, fur $f:expr, $imp:expr) => {
        CoreDef {
            name: $name,
            carbons: $n,
            anomeric: $an,
            deoxy: &$d,
            amino: &$am,
            acid: &$ac,
            furanose_default: $f,
            carbocycle: false,
            implied: $imp,
        }
    };
}

/// The core vocabulary. A unit's `type_id` is its core's index in this table.
pub static CORES: &[CoreDef] = &[
    // Hexoses.
    core!("Glc", 6, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Gal", 6, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Man", 6, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("All", 6, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Alt", 6, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Gul", 6, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Ido", 6, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Tal", 6, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Hex", 6, 1, deoxy [], amino [], acid [], fur false, ""),
    // Deoxy- and dideoxyhexoses.
    core!("Fuc", 6, 1, deoxy [6], amino [], acid [], fur false, ""),
    core!("Rha", 6, 1, deoxy [6], amino [], acid [], fur false, ""),
    core!("Qui", 6, 1, deoxy [6], amino [], acid [], fur false, ""),
    core!("dHex", 6, 1, deoxy [6], amino [], acid [], fur false, ""),
    core!("Abe", 6, 1, deoxy [3, 6], amino [], acid [], fur false, ""),
    core!("Tyv", 6, 1, deoxy [3, 6], amino [], acid [], fur false, ""),
    core!("Par", 6, 1, deoxy [3, 6], amino [], acid [], fur false, ""),
    core!("Col", 6, 1, deoxy [3, 6], amino [], acid [], fur false, ""),
    core!("Asc", 6, 1, deoxy [3, 6], amino [], acid [], fur false, ""),
    core!("Dig", 6, 1, deoxy [2, 6], amino [], acid [], fur false, ""),
    core!("Oli", 6, 1, deoxy [2, 6], amino [], acid [], fur false, ""),
    core!("Boi", 6, 1, deoxy [2, 6], amino [], acid [], fur false, ""),
    core!("Cym", 6, 1, deoxy [2, 6], amino [], acid [], fur false, "3Me"),
    core!("Aco", 6, 1, deoxy [6], amino [], acid [], fur false, "3Me"),
    core!("Pau", 6, 1, deoxy [2, 6], amino [], acid [], fur false, ""),
    core!("Erwiniose", 6, 1, deoxy [3, 6], amino [], acid [], fur false, "4CErw"),
    core!("Yer", 6, 1, deoxy [3, 6], amino [], acid [], fur false, "4CHEt"),
    core!("ddHex", 6, 1, deoxy [3, 6], amino [], acid [], fur false, ""),
    // Amino sugars with their own names.
    core!("Bac", 6, 1, deoxy [6], amino [2, 4], acid [], fur false, ""),
    core!("Mur", 6, 1, deoxy [], amino [2], acid [], fur false, "3Lac"),
    // Pentoses and tetroses.
    core!("Xyl", 5, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Ara", 5, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Rib", 5, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Lyx", 5, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Pen", 5, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Ery", 4, 1, deoxy [], amino [], acid [], fur true, ""),
    core!("Thre", 4, 1, deoxy [], amino [], acid [], fur true, ""),
    core!("Tet", 4, 1, deoxy [], amino [], acid [], fur true, ""),
    core!("Api", 4, 1, deoxy [], amino [], acid [], fur true, "3CHm"),
    // Ketoses.
    core!("Fru", 6, 2, deoxy [], amino [], acid [], fur false, ""),
    core!("Psi", 6, 2, deoxy [], amino [], acid [], fur false, ""),
    core!("Sor", 6, 2, deoxy [], amino [], acid [], fur false, ""),
    core!("Tag", 6, 2, deoxy [], amino [], acid [], fur false, ""),
    core!("Xlu", 5, 2, deoxy [], amino [], acid [], fur true, ""),
    core!("Rul", 5, 2, deoxy [], amino [], acid [], fur true, ""),
    core!("Sed", 7, 2, deoxy [], amino [], acid [], fur false, ""),
    // Heptoses and longer aldoses.
    core!("Hep", 7, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Oct", 8, 1, deoxy [], amino [], acid [], fur false, ""),
    core!("Non", 9, 1, deoxy [], amino [], acid [], fur false, ""),
    // Ulosonic acids.
    core!("Neu", 9, 2, deoxy [3], amino [5], acid [1], fur false, ""),
    core!("Sia", 9, 2, deoxy [3], amino [5], acid [1], fur false, "5Ac"),
    core!("Kdn", 9, 2, deoxy [3], amino [], acid [1], fur false, ""),
    core!("Kdo", 8, 2, deoxy [3], amino [], acid [1], fur false, ""),
    core!("Ko", 8, 2, deoxy [], amino [], acid [1], fur false, ""),
    core!("Pse", 9, 2, deoxy [3, 9], amino [5, 7], acid [1], fur false, ""),
    core!("Leg", 9, 2, deoxy [3, 9], amino [5, 7], acid [1], fur false, ""),
    core!("Aci", 9, 2, deoxy [3, 9], amino [5, 7], acid [1], fur false, ""),
    core!("Fus", 9, 2, deoxy [3, 9], amino [5], acid [1], fur false, ""),
    core!("Dha", 7, 2, deoxy [3], amino [], acid [1, 7], fur false, ""),
    // Cyclitol.
    CoreDef {
        name: "Ins",
        carbons: 6,
        anomeric: 0,
        deoxy: &[],
        amino: &[],
        acid: &[],
        furanose_default: false,
        carbocycle: true,
        implied: "",
    },
];

/// Configurational prefixes that, directly followed by a generic core (`Hex`, `Hep`, `Pen`,
/// `Oct`, `Non`), only say which stereoisomer it is (`AraHex`, `ManHep`, `LyxHep`).
const STEREO_WORDS: &[&str] =
    &["Ery", "Thre", "Thr", "Ara", "Lyx", "Rib", "Xyl", "All", "Alt", "Glc", "Man", "Gul", "Ido", "Gal", "Tal"];
const GENERIC_CORES: &[&str] = &["Hex", "Hep", "Pen", "Oct", "Non"];

/// Index of a core by name.
pub fn core_index(name: &str) -> Option<usize> {
    CORES.iter().position(|c| c.name == name)
}

/// Ring form of a residue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ring {
    /// Six-membered ring (aldohexoses C1–C5, ketoses C2–C6).
    Pyranose,
    /// Five-membered ring.
    Furanose,
    /// Open chain (alditols, aldonic acids).
    Open,
    /// Carbocycle (inositol).
    Carbocycle,
}

/// How a modification attaches.
#[derive(Clone, Debug, PartialEq)]
pub enum ModKind {
    /// The heteroatom at the position becomes this element (`N` amino, `F`, `SH` thio …).
    Replace(aa_graph::Element),
    /// A group bonded to the heteroatom at the position, replacing one of its hydrogens.
    Attach(&'static Group),
    /// A group bonded to the backbone carbon (C-branch, e.g. `3CMe`).
    CarbonBranch(&'static Group),
    /// Removes the heteroatom at the position (deoxy).
    Deoxy,
    /// A C=C double bond from the position to the next carbon (`4en`).
    Ene,
    /// The hydroxyl at the position becomes a ketone (`4Ulo`).
    Keto,
}

/// One modification at a position (alternatives such as `3/4` keep every candidate; an empty
/// list means the position is unknown).
#[derive(Clone, Debug, PartialEq)]
pub struct Modification {
    /// Candidate positions; empty when unknown (`OS`, `?S`).
    pub positions: Vec<u8>,
    /// What is done there.
    pub kind: ModKind,
    /// The position was not written but assumed (the amino group of `GlcN` at C2).
    pub assumed: bool,
}

/// A substituent group.
#[derive(Debug, PartialEq)]
pub struct Group {
    /// Name in IUPAC-condensed (`Ac`, `PCho`).
    pub name: &'static str,
    /// Fragment SMILES; its first atom bonds to the residue.
    pub smiles: &'static str,
    /// For amino acids on a carboxyl group: the amide form, whose first atom (N) replaces the
    /// carboxyl hydroxyl oxygen.
    pub amide: Option<&'static str>,
    /// The pyruvate ketal, which bridges two hydroxyls.
    pub ketal: bool,
}

macro_rules! group {
    ($n:expr, $s:expr) => {
        Group { name: $n, smiles: $s, amide: None, ketal: false }
    };
    ($n:expr, $s:expr, amide $a:expr) => {
        Group { name: $n, smiles: $s, amide: Some($a), ketal: false }
    };
}

/// Substituent groups, longest names first where one is a prefix of another.
pub static GROUPS: &[Group] = &[
    group!("PPEtN", "P(=O)(O)OP(=O)(O)OCCN"),
    group!("PPEtn", "P(=O)(O)OP(=O)(O)OCCN"),
    group!("PEtN", "P(=O)(O)OCCN"),
    group!("PEtn", "P(=O)(O)OCCN"),
    group!("PCho", "P(=O)([O-])OCC[N+](C)(C)C"),
    group!("PGro", "P(=O)(O)OCC(O)CO"),
    group!("PP", "P(=O)(O)OP(=O)(O)O"),
    group!("P", "P(=O)(O)O"),
    group!("S", "S(=O)(=O)O"),
    group!("Ac", "C(=O)C"),
    group!("Gc", "C(=O)CO"),
    group!("Fo", "C=O"),
    group!("But", "C(=O)CCC"),
    group!("Prop", "CCC"),
    group!("Pp", "C(=O)CC"),
    group!("Hxo", "C(=O)CCCCC"),
    group!("Oco", "C(=O)CCCCCCC"),
    group!("Beh", "C(=O)CCCCCCCCCCCCCCCCCCCCC"),
    group!("Cin", "C(=O)C=Cc1ccccc1"),
    group!("Sin", "C(=O)C=Cc1cc(OC)c(O)c(OC)c1"),
    group!("Bn", "Cc1ccccc1"),
    group!("Am", "C(=N)C"),
    group!("TriMe", "C"),
    group!("DiMe", "C"),
    group!("Me", "C"),
    group!("EtN", "CCN"),
    group!("EtOH", "CCO"),
    group!("Et", "CC"),
    group!("Gro", "CC(O)CO"),
    group!("Hm", "CO"),
    group!("MeOH", "CO"),
    group!("HEt", "C(O)C"),
    group!("Erw", "C(O)CC(C)O"),
    group!("Lac", "C(C)C(=O)O"),
    group!("Cm", "C(=O)N"),
    group!("Aep", "P(=O)(O)CCN"),
    group!("Ala", "C(=O)C(C)N", amide "NC(C)C(=O)O"),
    group!("Gly", "C(=O)CN", amide "NCC(=O)O"),
    group!("Ser", "C(=O)C(N)CO", amide "NC(CO)C(=O)O"),
    group!("Thr", "C(=O)C(N)C(C)O", amide "NC(C(C)O)C(=O)O"),
    group!("Lys", "C(=O)C(N)CCCCN", amide "NC(CCCCN)C(=O)O"),
    group!("Asp", "C(=O)C(N)CC(=O)O", amide "NC(CC(=O)O)C(=O)O"),
    group!("Glu", "C(=O)C(N)CCC(=O)O", amide "NC(CCC(=O)O)C(=O)O"),
    group!("Cys", "C(=O)C(N)CS", amide "NC(CS)C(=O)O"),
    group!("Oc", "CCCCCCCC"),
    group!("Lin", "C(=O)CCCCCCCC=CCC=CCCCCC"),
    group!("Orn", "C(=O)C(N)CCCN", amide "NC(CCCN)C(=O)O"),
    group!("Pro", "C(=O)C1CCCN1", amide "N1CCCC1C(=O)O"),
    group!("Hse", "C(=O)C(N)CCO", amide "NC(CCO)C(=O)O"),
    group!("Suc", "C(=O)CCC(=O)O"),
    group!("Mal", "C(=O)CC(=O)O"),
    group!("Lau", "C(=O)CCCCCCCCCCC"),
    group!("Myr", "C(=O)CCCCCCCCCCCCC"),
    group!("Dco", "C(=O)CCCCCCCCC"),
    group!("Mar", "C(=O)CCCCCCCCCCCCCCCC"),
    group!("Pam", "C(=O)CCCCCCCCCCCCCCC"),
    group!("Ste", "C(=O)CCCCCCCCCCCCCCCCC"),
    group!("Ole", "C(=O)CCCCCCCC=CCCCCCCCC"),
    group!("Vac", "C(=O)CCCCCCCCCC=CCCCCCC"),
    group!("Fer", "C(=O)C=Cc1ccc(O)c(OC)c1"),
    group!("Coum", "C(=O)C=Cc1ccc(O)cc1"),
    group!("Bz", "C(=O)c1ccccc1"),
    // Ceramide aglycone: chain lengths are not written; d18:1/16:0 is assumed (flagged).
    group!("Cer", "CC(NC(=O)CCCCCCCCCCCCCCC)C(O)C=CCCCCCCCCCCCCC"),
    Group { name: "Pyr", smiles: "C(C)C(=O)O", amide: None, ketal: true },
    group!("Cl", "Cl"),
    group!("Br", "Br"),
    group!("F", "F"),
    group!("I", "I"),
];

/// Open-chain forms written as suffixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenForm {
    /// Cyclic (the normal case).
    None,
    /// `-ol`: the reduced alditol.
    Alditol,
    /// `-onic`: the aldonic acid (C1 oxidised to COOH).
    Aldonic,
}

/// Everything about one residue name that changes its atoms.
#[derive(Clone, Debug)]
pub struct ResidueSpec {
    /// Index into [`CORES`].
    pub core: usize,
    /// Ring form.
    pub ring: Ring,
    /// Open-chain suffix.
    pub open: OpenForm,
    /// Extra carboxylic-acid positions (uronic `A`, `-ulosaric`).
    pub extra_acid: Vec<u8>,
    /// Anhydro bridges `(kept oxygen position, carbon position)`.
    pub anhydro: Vec<(u8, u8)>,
    /// Modifications in written order (implied ones first).
    pub mods: Vec<Modification>,
    /// Notes on assumptions (unknown positions, assumed chain lengths).
    pub flags: Vec<String>,
    /// The ring size was written (`f`/`p`); otherwise it may be inferred from the linkage.
    pub ring_explicit: bool,
    /// Open-chain carbonyl form (`keto-Fru`): the anomeric carbon is a C=O.
    pub carbonyl: bool,
    /// Anomeric carbon: the core's, or 2 for names ending in `-ulosonic`/`-ulosaric`.
    pub anomeric: u8,
}

impl ResidueSpec {
    /// The core definition.
    pub fn core_def(&self) -> &'static CoreDef {
        &CORES[self.core]
    }
}

/// A residue-name error: byte offset inside the name and message.
#[derive(Clone, Debug, PartialEq)]
pub struct NameError {
    /// Offset within the residue name.
    pub offset: usize,
    /// What was not understood.
    pub message: String,
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, NameError> {
    Err(NameError { offset, message: message.into() })
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }
    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.as_bytes().get(self.i + k).copied()
    }
    fn eat(&mut self, p: &str) -> bool {
        if self.rest().starts_with(p) {
            self.i += p.len();
            true
        } else {
            false
        }
    }
    fn digits(&mut self) -> Option<u8> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        self.s[start..self.i].parse::<u8>().ok()
    }
}

/// Skeletons glycowork names but spells by their usual core: perosamine (`Per`, 4-amino-4,6-
/// dideoxy-D-mannose = `D-Rha4N`) and viosamine (`Vio`, 4-amino-4,6-dideoxy-D-glucose =
/// `Qui4N`), as glycowork's own SMILES table defines them. An unpositioned N-acyl acylates
/// that 4-amino group (`PerNAc` = `Rha4NAc`). The molecule graph carries no stereochemistry, so
/// the D/L of the spelled core does not matter.
fn skeleton_alias(name: &str) -> Option<String> {
    let (prefix, body) = match name.get(..2) {
        Some("D-") | Some("L-") => name.split_at(2),
        _ => ("", name),
    };
    let (core, rest) = [("Per", "Rha4"), ("Vio", "Qui4")].iter().find_map(|(alias, core)| {
        body.strip_prefix(alias).filter(|r| !r.starts_with(|c: char| c.is_ascii_lowercase())).map(|r| (*core, r))
    })?;
    Some(if rest.starts_with('N') { format!("{prefix}{core}{rest}") } else { format!("{prefix}{core}N{rest}") })
}

/// Parses a residue name. Errors carry the byte offset inside `name`.
pub fn parse_residue(name: &str) -> Result<ResidueSpec, NameError> {
    if name.is_empty() {
        return err(0, "empty monosaccharide name");
    }
    if let Some(alias) = skeleton_alias(name) {
        return parse_residue(&alias).map_err(|e| NameError { offset: e.offset.min(name.len()), ..e });
    }
    let mut body = name;
    let mut open = OpenForm::None;
    let mut ulosaric = false;
    for (suffix, form) in [("-ol", OpenForm::Alditol), ("-onic", OpenForm::Aldonic)] {
        if let Some(b) = body.strip_suffix(suffix) {
            body = b;
            open = form;
        }
    }
    let mut ulosonic = false;
    if let Some(b) = body.strip_suffix("-ulosaric") {
        body = b;
        ulosaric = true;
    }
    if let Some(b) = body.strip_suffix("-ulosonic") {
        body = b;
        ulosonic = true;
    }
    let mut extra_acid_suffix = false;
    let mut aric = false;
    if let Some(b) = body.strip_suffix("-uronic") {
        body = b;
        extra_acid_suffix = true;
    }
    if let Some(b) = body.strip_suffix("-aric") {
        body = b;
        aric = true;
    }
    let mut carbonyl = false;
    if let Some(b) = body.strip_prefix("keto-").or_else(|| body.strip_prefix("aldehydo-")) {
        body = b;
        carbonyl = true;
    }
    let mut c = Cursor { s: body, i: 0 };
    let mut deoxy: Vec<u8> = Vec::new();
    let mut anhydro = Vec::new();
    // Prefixes: D-/L-, "6-deoxy-", "3,6-Anhydro-", "6d", "3,6dd", "LD", "4e".
    loop {
        let save = c.i;
        if c.eat("D-") || c.eat("L-") || c.eat("DL-") || c.eat("LD-") || c.eat("DD-") || c.eat("LL-") {
            continue;
        }
        if c.peek().is_some_and(|x| x.is_ascii_digit()) {
            let mut nums = vec![];
            while let Some(n) = c.digits() {
                nums.push(n);
                if !c.eat(",") {
                    break;
                }
            }
            if c.eat("-deoxy-") || c.eat("-dideoxy-") {
                deoxy.extend(&nums);
                continue;
            }
            if c.eat("-Anhydro-") || c.eat("-anhydro-") {
                if nums.len() != 2 {
                    return err(save, "anhydro prefix needs two positions, like 3,6-Anhydro-");
                }
                anhydro.push((nums[0], nums[1]));
                continue;
            }
            let mut ds = 0;
            while c.peek() == Some(b'd') {
                c.i += 1;
                ds += 1;
            }
            if ds > 0 && c.peek().is_some_and(|x| x.is_ascii_uppercase() || x == b'd') {
                deoxy.extend(&nums);
                continue;
            }
            if ds == 0 && c.peek() == Some(b'e') && c.peek_at(1).is_some_and(|x| x.is_ascii_uppercase()) {
                c.i += 1; // epimer descriptor such as 4eLeg
                continue;
            }
            c.i = save;
            break;
        }
        let r = c.rest();
        if r.len() > 2 && matches!(&r[..2], "LD" | "DD" | "DL" | "LL") && r.as_bytes()[2].is_ascii_uppercase() {
            c.i += 2;
            continue;
        }
        break;
    }
    // Core.
    let core_start = c.i;
    let mut core: Option<usize> = None;
    let mut core_len = 0;
    let mut stereo_word: Option<(&str, &str)> = None;
    for w in STEREO_WORDS {
        let r = c.rest();
        if let Some(after) = r.strip_prefix(w) {
            if let Some(g) = GENERIC_CORES.iter().find(|g| after.starts_with(**g)) {
                core = core_index(g);
                core_len = w.len() + g.len();
                stereo_word = Some((w, g));
                break;
            }
        }
    }
    if core.is_none() {
        for (k, def) in CORES.iter().enumerate() {
            if c.rest().starts_with(def.name) && def.name.len() > core_len {
                core = Some(k);
                core_len = def.name.len();
            }
        }
    }
    let core = match core {
        Some(k) => k,
        None => {
            let word: String = c.rest().chars().take_while(|x| x.is_ascii_alphanumeric()).collect();
            return err(core_start, format!("unknown monosaccharide '{word}'"));
        }
    };
    c.i += core_len;
    let def = &CORES[core];
    let mut ring = if def.carbocycle {
        Ring::Carbocycle
    } else if def.furanose_default {
        Ring::Furanose
    } else {
        Ring::Pyranose
    };
    let mut ring_explicit = false;
    if c.eat("f") {
        ring = Ring::Furanose;
        ring_explicit = true;
    } else if c.eat("p") {
        ring = Ring::Pyranose;
        ring_explicit = true;
    }
    let mut spec = ResidueSpec {
        core,
        ring,
        open,
        extra_acid: vec![],
        anhydro,
        mods: vec![],
        flags: vec![],
        ring_explicit,
        carbonyl,
        anomeric: def.anomeric,
    };
    if (ulosonic || ulosaric) && def.anomeric == 1 {
        // 2-Ulosonic/ulosaric acids named on a generic core (DL-3,9dGalNon…-ulosonic): the
        // carbonyl moves to C2 and C1 becomes the acid.
        spec.anomeric = 2;
        spec.extra_acid.push(1);
    }
    if extra_acid_suffix {
        spec.extra_acid.push(def.carbons);
    }
    if aric {
        spec.extra_acid.extend([1, def.carbons]);
        spec.open = OpenForm::Alditol;
    }
    if ulosaric {
        spec.extra_acid.push(def.carbons);
    }
    // A configuration word naming one stereocentre fewer than the aldose has besides the
    // written deoxy positions (`6dAraHex`: arabino names three, a 6-deoxyhexose has four):
    // the carbon next to the carbonyl is no stereocentre — the sugar is 2-deoxy (6dAraHex is
    // 2,6-dideoxy-arabino-hexose) unless a modification is written at C2, and an unpositioned
    // amino group goes on the first hydroxyl left free by the links (`6dAraHexN` alone is
    // 3-amino-2,3,6-trideoxy-arabino-hexose, acosamine's constitution; in `Man(b1-3)6dAraHexN`
    // the amino sits at C4) — glycowork's SMILES writer reads these names so. A written keto
    // position (`4Ulo`) is the missing centre instead (`6dXylHexN4Ulo` keeps C2, with its
    // amino). Only for hexoses named by a pentose word and pentoses named by a tetrose word;
    // heptose names carry their extra centre in `LD`.
    let mut implied_2_deoxy = false;
    if let Some((w, g)) = stereo_word {
        let word_centres = match w {
            "Ery" | "Thre" | "Thr" => 2,
            "Ara" | "Lyx" | "Rib" | "Xyl" => 3,
            _ => 4,
        };
        let carbons = usize::from(def.carbons);
        let inner_deoxy = deoxy.iter().filter(|&&d| d > 1 && usize::from(d) < carbons).count()
            + keto_positions(&body[c.i..]).filter(|&p| p > 1 && p < carbons).count();
        let pairs = matches!((g, word_centres), ("Hex", 3) | ("Pen", 2));
        implied_2_deoxy =
            pairs && spec.anomeric == 1 && !deoxy.contains(&2) && carbons - 2 == word_centres + inner_deoxy + 1;
    }
    for d in deoxy {
        spec.mods.push(Modification { positions: vec![d], kind: ModKind::Deoxy, assumed: false });
    }
    if !def.implied.is_empty() {
        parse_mods(def.implied, 0, def, &mut spec, Some(2)).expect("core table implied modifications parse");
    }
    let offset = c.i;
    parse_mods(&body[offset..], offset, def, &mut spec, (!implied_2_deoxy).then_some(2))?;
    if implied_2_deoxy && !spec.mods.iter().any(|m| m.positions.contains(&2)) {
        spec.mods.push(Modification { positions: vec![2], kind: ModKind::Deoxy, assumed: false });
    }
    // `2ulo` on an aldose name: the sugar is the 2-ketose of that configuration (`Hex2ulo` =
    // hex-2-ulose, `Glc2ulo` = D-arabino-hex-2-ulose, fructose's constitution): the anomeric
    // carbon is C2 and C1 a primary alcohol, not a ketone beside the hemiacetal.
    if spec.anomeric == 1 && !carbonyl && open == OpenForm::None {
        if let Some(k) = spec.mods.iter().position(|m| m.kind == ModKind::Keto && m.positions == [2]) {
            spec.mods.remove(k);
            spec.anomeric = 2;
        }
    }
    // "-onic" on a 2-ulosonic acid (Pse5Ac7Fo-onic) names the acid itself, which stays cyclic.
    if spec.open == OpenForm::Aldonic && def.acid.contains(&1) {
        spec.open = OpenForm::None;
    }
    if matches!(spec.open, OpenForm::Alditol | OpenForm::Aldonic) || carbonyl {
        spec.ring = Ring::Open;
    }
    Ok(spec)
}

/// Positions written as keto groups (`4Ulo`, `6ulo`) in a modification tail, as glycowork
/// finds them (`\d+(Ulo|ulo)`).
fn keto_positions(s: &str) -> impl Iterator<Item = usize> + '_ {
    s.match_indices("lo").filter_map(move |(i, _)| {
        let head = s[..i].strip_suffix('U').or_else(|| s[..i].strip_suffix('u'))?;
        let digits = head.len() - head.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        head[head.len() - digits..].parse().ok()
    })
}

/// Parses the modification tail (`6S`, `NAc`, `5,9Ac2`, `OPEtN`, `A`, `4en` …); an
/// unpositioned amino group of an aldose without its own goes to `n_at` (`None`: placed on the first free hydroxyl when the molecule is built).
fn parse_mods(s: &str, base: usize, def: &CoreDef, spec: &mut ResidueSpec, n_at: Option<u8>) -> Result<(), NameError> {
    let mut c = Cursor { s, i: 0 };
    let mut after_acid = false;
    let mut unpositioned_n = 0usize;
    while c.i < s.len() {
        let start = c.i;
        // Uronic acid marker: 'A' not starting a group name (Ac, Ala, Am, Aep).
        if c.peek() == Some(b'A') && !c.peek_at(1).is_some_and(|x| x.is_ascii_lowercase()) {
            c.i += 1;
            spec.extra_acid.push(def.carbons);
            after_acid = true;
            continue;
        }
        // Positions.
        let mut positions: Vec<u8> = Vec::new();
        let mut alternatives = false;
        let mut unknown = false;
        if c.peek() == Some(b'O') && c.peek_at(1).is_some_and(|x| x.is_ascii_uppercase()) {
            c.i += 1;
            unknown = true;
        } else if c.peek().is_some_and(|x| x.is_ascii_digit() || x == b'?') {
            loop {
                if c.eat("?") {
                    unknown = true;
                } else if let Some(n) = c.digits() {
                    positions.push(n);
                } else {
                    return err(base + c.i, "expected a position number");
                }
                if c.eat(",") {
                    continue;
                }
                if c.eat("/") {
                    alternatives = true;
                    continue;
                }
                break;
            }
        }
        let has_pos = !positions.is_empty() || unknown;
        for &p in &positions {
            if p == 0 || p > def.carbons {
                return err(base + start, format!("position {p} is outside {} (C1–C{})", def.name, def.carbons));
            }
        }
        let groups_at = |positions: &Vec<u8>| -> Vec<Vec<u8>> {
            if unknown {
                vec![vec![]]
            } else if alternatives {
                vec![positions.clone()]
            } else {
                positions.iter().map(|&p| vec![p]).collect()
            }
        };
        // "en": double bond.
        if has_pos && c.eat("en") {
            for p in groups_at(&positions) {
                spec.mods.push(Modification { positions: p, kind: ModKind::Ene, assumed: false });
            }
            continue;
        }
        if has_pos && (c.eat("Ulo") || c.eat("ulo")) {
            for p in groups_at(&positions) {
                spec.mods.push(Modification { positions: p, kind: ModKind::Keto, assumed: false });
            }
            continue;
        }
        if has_pos && c.peek() == Some(b'd') && !c.peek_at(1).is_some_and(|x| x.is_ascii_lowercase()) {
            c.i += 1;
            for p in groups_at(&positions) {
                spec.mods.push(Modification { positions: p, kind: ModKind::Deoxy, assumed: false });
            }
            continue;
        }
        // C-branch: 3CMe.
        if has_pos && c.peek() == Some(b'C') && c.peek_at(1).is_some_and(|x| x.is_ascii_uppercase()) {
            c.i += 1;
            let (g, count) = read_group(&mut c, base)?;
            for p in groups_at(&positions) {
                for _ in 0..count.max(1) {
                    spec.mods.push(Modification {
                        positions: p.clone(),
                        kind: ModKind::CarbonBranch(g),
                        assumed: false,
                    });
                }
            }
            continue;
        }
        // "N" amino, optionally acylated: NAc, 3NAc, NS, N.
        if c.peek() == Some(b'N') && !c.peek_at(1).is_some_and(|x| x.is_ascii_lowercase()) {
            c.i += 1;
            let target: Vec<u8> = if has_pos {
                positions.clone()
            } else if after_acid {
                vec![def.carbons]
            } else if unpositioned_n < def.amino.len() {
                // Names like PseNAcNBut acylate the core's own amino groups in order.
                vec![def.amino[unpositioned_n]]
            } else if unpositioned_n == def.amino.len() && def.anomeric == 1 && !def.amino.contains(&2) {
                n_at.into_iter().collect()
            } else {
                vec![]
            };
            let n_is_intrinsic = !has_pos && !after_acid && unpositioned_n < def.amino.len();
            let assumed = !has_pos && !after_acid && !n_is_intrinsic;
            unpositioned_n += 1;
            let pos_groups: Vec<Vec<u8>> = if target.is_empty() {
                vec![vec![]]
            } else if alternatives {
                vec![target]
            } else {
                target.iter().map(|&p| vec![p]).collect()
            };
            if target_is_unknown(&pos_groups) {
                spec.flags.push("unknown_modification_position".into());
            }
            let next_is_group = match c.peek() {
                Some(b'O') => !c.peek_at(1).is_some_and(|x| x.is_ascii_uppercase()),
                Some(b'A') => c.peek_at(1).is_some_and(|x| x.is_ascii_lowercase()),
                Some(x) => x.is_ascii_uppercase(),
                None => false,
            };
            let acyl = if next_is_group { Some(read_group(&mut c, base)?) } else { None };
            for p in pos_groups {
                if !n_is_intrinsic {
                    spec.mods.push(Modification {
                        positions: p.clone(),
                        kind: ModKind::Replace(aa_graph::Element::N),
                        assumed,
                    });
                }
                if let Some((g, count)) = acyl {
                    for _ in 0..count.max(1) {
                        spec.mods.push(Modification { positions: p.clone(), kind: ModKind::Attach(g), assumed });
                    }
                }
            }
            after_acid = false;
            continue;
        }
        // "SH" thio.
        if has_pos && c.rest().starts_with("SH") {
            c.i += 2;
            for p in groups_at(&positions) {
                spec.mods.push(Modification {
                    positions: p,
                    kind: ModKind::Replace(aa_graph::Element::S),
                    assumed: false,
                });
            }
            continue;
        }
        if !c.peek().is_some_and(|x| x.is_ascii_uppercase()) {
            let bad: String = c.rest().chars().take(6).collect();
            return err(base + c.i, format!("unexpected '{bad}' in modifications of {}", def.name));
        }
        let (g, count) = read_group(&mut c, base)?;
        let pos_groups = if has_pos {
            groups_at(&positions)
        } else if after_acid && g.amide.is_some() {
            vec![vec![def.carbons]]
        } else {
            vec![vec![]]
        };
        if target_is_unknown(&pos_groups) {
            spec.flags.push("unknown_modification_position".into());
        }
        if alternatives {
            spec.flags.push("alternative_modification_position".into());
        }
        if g.name == "Cer" {
            spec.flags.push("ceramide_assumed_d18:1/16:0".into());
        }
        let per_position = if has_pos && !unknown && !alternatives && positions.len() > 1 && count > 1 {
            if count as usize != positions.len() {
                return err(base + start, format!("{} positions but count {count}", positions.len()));
            }
            1
        } else {
            count.max(1)
        };
        let per_position = match g.name {
            "DiMe" => 2,
            "TriMe" => 3,
            _ => per_position,
        };
        for p in pos_groups {
            let kind = match g.name {
                "F" | "Cl" | "Br" | "I" => ModKind::Replace(aa_graph::Element::from_symbol(g.name).unwrap()),
                _ => ModKind::Attach(g),
            };
            for _ in 0..per_position {
                spec.mods.push(Modification { positions: p.clone(), kind: kind.clone(), assumed: false });
            }
        }
        after_acid = false;
    }
    Ok(())
}

fn target_is_unknown(groups: &[Vec<u8>]) -> bool {
    groups.iter().any(|g| g.is_empty())
}

fn read_group(c: &mut Cursor<'_>, base: usize) -> Result<(&'static Group, u8), NameError> {
    let start = c.i;
    let mut best: Option<&'static Group> = None;
    for g in GROUPS {
        if c.rest().starts_with(g.name) && best.is_none_or(|b| g.name.len() > b.name.len()) {
            // A group name must not run into more lowercase letters (e.g. "Ph" in "Phe").
            let next = c.rest().as_bytes().get(g.name.len()).copied();
            if next.is_some_and(|x| x.is_ascii_lowercase()) {
                continue;
            }
            best = Some(g);
        }
    }
    let Some(g) = best else {
        let word: String =
            c.rest().char_indices().take_while(|&(k, x)| k == 0 || x.is_ascii_lowercase()).map(|(_, x)| x).collect();
        return err(base + start, format!("unknown modification '{word}'"));
    };
    c.i += g.name.len();
    // A trailing number is a count (`Ac2` in `Neu5,9Ac2`) only when nothing follows it;
    // otherwise it is the next modification's position (`Ac6S`).
    let save = c.i;
    let count = match c.digits() {
        Some(n) if c.i == c.s.len() => n,
        _ => {
            c.i = save;
            1
        }
    };
    Ok((g, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perosamine_and_viosamine_are_4_amino_6_deoxy_hexoses() {
        // glycowork's SMILES table: Per / Vio = a 6-deoxyhexose with N at C4 (C6H13NO4).
        for (name, formula) in [
            ("Per", "C6H13NO4"),
            ("Vio", "C6H13NO4"),
            ("PerNAc", "C8H15NO5"),
            ("VioNAc", "C8H15NO5"),
            ("D-PerNFo", "C7H13NO5"),
            ("Per2Me", "C7H15NO4"),
        ] {
            let g = crate::Glycan::from_iupac(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(g.molecule.graph.formula(), formula, "{name}");
        }
        assert_eq!(mods("PerNAc"), mods("Rha4NAc"));
        assert_eq!(mods("VioNAc"), mods("Qui4NAc"));
        // Names that merely start with the letters are not the skeletons.
        assert!(parse_residue("Perx").is_err());
        let e = parse_residue("PerNAcQ").unwrap_err();
        assert!(e.offset <= "PerNAcQ".len());
    }

    fn mods(name: &str) -> Vec<String> {
        parse_residue(name)
            .unwrap()
            .mods
            .iter()
            .map(|m| {
                let k = match &m.kind {
                    ModKind::Replace(e) => format!("={e}"),
                    ModKind::Attach(g) => g.name.to_string(),
                    ModKind::CarbonBranch(g) => format!("C{}", g.name),
                    ModKind::Deoxy => "d".into(),
                    ModKind::Ene => "en".into(),
                    ModKind::Keto => "ulo".into(),
                };
                format!("{:?}{k}", m.positions)
            })
            .collect()
    }

    #[test]
    fn core_names() {
        for (name, core) in [
            ("GlcNAc", "Glc"),
            ("D-Araf", "Ara"),
            ("LDManHep", "Hep"),
            ("6-deoxy-L-All", "All"),
            ("D-6dAraHex", "Hex"),
            ("Neu5Ac", "Neu"),
            ("Kdo", "Kdo"),
            ("Ko", "Ko"),
            ("4eLeg", "Leg"),
            ("dHex", "dHex"),
            ("HexNAc", "Hex"),
            ("Fruf", "Fru"),
            ("GalNAc-ol", "Gal"),
        ] {
            let s = parse_residue(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(s.core_def().name, core, "{name}");
        }
        assert_eq!(parse_residue("Galf").unwrap().ring, Ring::Furanose);
        assert_eq!(parse_residue("GalNAc-ol").unwrap().ring, Ring::Open);
    }

    #[test]
    fn modifications() {
        assert_eq!(mods("GlcNAc6S"), vec!["[2]=N", "[2]Ac", "[6]S"]);
        assert_eq!(mods("Neu5,9Ac2"), vec!["[5]Ac", "[9]Ac"]);
        assert_eq!(mods("Neu5Gc"), vec!["[5]Gc"]);
        assert_eq!(mods("GalOS"), vec!["[]S"]);
        assert_eq!(mods("Gal3/4S"), vec!["[3, 4]S"]);
        assert_eq!(mods("GlcNS"), vec!["[2]=N", "[2]S"]);
        assert_eq!(mods("Qui3NAc"), vec!["[3]=N", "[3]Ac"]);
        assert_eq!(mods("Gal3CMe"), vec!["[3]CMe"]);
        assert_eq!(mods("6-deoxy-L-All"), vec!["[6]d"]);
        assert_eq!(mods("Glc6F"), vec!["[6]=F"]);
        assert_eq!(mods("Mur"), vec!["[3]Lac"]);
        assert_eq!(mods("GlcN2DiMe"), vec!["[2]=N", "[2]DiMe", "[2]DiMe"]);
        assert_eq!(parse_residue("GalA").unwrap().extra_acid, vec![6]);
        assert_eq!(mods("GalA6N"), vec!["[6]=N"]);
        assert_eq!(mods("GalNAcAN"), vec!["[2]=N", "[2]Ac", "[6]=N"]);
    }

    #[test]
    fn bad_names() {
        let e = parse_residue("Glx").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("unknown monosaccharide 'Glx'"), "{}", e.message);
        let e = parse_residue("Glc6Zz").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("unknown modification 'Zz'"), "{}", e.message);
        assert!(parse_residue("Glc12S").is_err());
        assert!(parse_residue("").is_err());
    }
}
