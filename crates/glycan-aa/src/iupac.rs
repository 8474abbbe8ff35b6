//! IUPAC-condensed glycan strings as glycowork and GlycanML write them: non-reducing end on the
//! left, root (reducing end) on the right, branches in `[...]`, floating parts in `{...}`, and an
//! optional dangling reducing-end link such as `...GalNAc(a1-`.

use aa_graph::Anomer;
use serde::Serialize;

use crate::GlycanError;

/// What bridges the donor's anomeric carbon and the acceptor position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Bridge {
    /// Ordinary O-glycosidic bond.
    Oxygen,
    /// Phosphodiester (`a1-P-6`).
    Phosphate,
    /// Thioglycoside (`b1-S-4`, `b1-SH-4`).
    Sulfur,
    /// N-glycosidic bond to an amino position (`a1-N-4`).
    Nitrogen,
}

/// A parsed link such as `(b1-4)`, `(a2-3/6)`, `(a1-P-6)`, `(b2-1a)` or `(?1-?)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkSpec {
    /// Text between the parentheses.
    pub text: String,
    /// Byte offset of the text in the glycan string.
    pub offset: usize,
    /// Anomeric configuration of the donor.
    pub anomer: Anomer,
    /// Donor carbon (`None` for `?`).
    pub donor: Option<u8>,
    /// Acceptor candidates (`3/6` → `[3, 6]`; empty for `?` or a dangling link).
    pub acceptor: Vec<u8>,
    /// Bridge atom(s).
    pub bridge: Bridge,
}

/// One monosaccharide as written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParsedResidue {
    /// Name as written (`GlcNAc6S`).
    pub name: String,
    /// Byte offset of the name in the glycan string.
    pub offset: usize,
    /// Acceptor residue this one is linked to (`None` for the root and for floating parts'
    /// roots before attachment).
    pub parent: Option<usize>,
    /// Link to the parent.
    pub link: Option<LinkSpec>,
    /// Part of a `{...}` floating group.
    pub floating: bool,
}

/// A parsed glycan tree. Residues are stored in the order they appear in the string.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParsedGlycan {
    /// Residues, in string order.
    pub residues: Vec<ParsedResidue>,
    /// Index of the root (reducing-end) residue.
    pub root: usize,
    /// Roots of `{...}` floating parts (their attachment point is unknown).
    pub floating_roots: Vec<usize>,
    /// Dangling reducing-end link, e.g. `a1-` in `GalNAc(a1-`.
    pub reducing_end: Option<LinkSpec>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Residue,
    Link { closed: bool },
    Open,
    Close,
    FloatOpen,
    FloatClose,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

fn perr<T>(pos: usize, msg: impl Into<String>) -> Result<T, GlycanError> {
    Err(GlycanError::Parse { position: pos, message: msg.into() })
}

fn tokenize(s: &str) -> Result<Vec<Token>, GlycanError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let single = match c {
            b'[' => Some(Tok::Open),
            b']' => Some(Tok::Close),
            b'{' => Some(Tok::FloatOpen),
            b'}' => Some(Tok::FloatClose),
            _ => None,
        };
        if let Some(kind) = single {
            out.push(Token { kind, start: i, end: i + 1 });
            i += 1;
            continue;
        }
        if c == b'(' {
            let close = s[i + 1..].find([')', '(', '[', ']', '{', '}']).map(|k| k + i + 1);
            match close {
                Some(k) if b[k] == b')' => {
                    out.push(Token { kind: Tok::Link { closed: true }, start: i + 1, end: k });
                    i = k + 1;
                }
                None => {
                    out.push(Token { kind: Tok::Link { closed: false }, start: i + 1, end: b.len() });
                    i = b.len();
                }
                Some(k) => return perr(k, format!("'(' at character {} is not closed by ')'", i + 1)),
            }
            continue;
        }
        if c == b')' {
            return perr(i, "')' without a matching '('");
        }
        let start = i;
        while i < b.len() && !matches!(b[i], b'(' | b')' | b'[' | b']' | b'{' | b'}') {
            i += 1;
        }
        out.push(Token { kind: Tok::Residue, start, end: i });
    }
    Ok(out)
}

fn parse_link(s: &str, offset: usize, dangling: bool) -> Result<LinkSpec, GlycanError> {
    let text = s.to_string();
    let bad = |msg: &str| perr(offset, format!("bad link '({s}': {msg}"));
    // Anomer letter (a, b, or ? when followed by a donor position); links such as "1-6" or
    // "?-?" have none.
    let (anomer, rest) = match s.as_bytes() {
        [b'a', ..] => (Anomer::Alpha, &s[1..]),
        [b'b', ..] => (Anomer::Beta, &s[1..]),
        [b'?', next, ..] if *next != b'-' => (Anomer::Unknown, &s[1..]),
        _ => (Anomer::Unknown, s),
    };
    let Some(dash) = rest.find('-') else {
        return bad("expected donor-acceptor like b1-4");
    };
    let donor_txt = &rest[..dash];
    let donor = match donor_txt {
        "?" => None,
        d => match d.parse::<u8>() {
            Ok(x) if (1..=9).contains(&x) => Some(x),
            _ => return bad("donor position must be a number 1-9 or ?"),
        },
    };
    let mut acc = &rest[dash + 1..];
    let mut bridge = Bridge::Oxygen;
    for (pfx, br) in
        [("P-", Bridge::Phosphate), ("SH-", Bridge::Sulfur), ("S-", Bridge::Sulfur), ("N-", Bridge::Nitrogen)]
    {
        if let Some(a) = acc.strip_prefix(pfx) {
            acc = a;
            bridge = br;
        }
    }
    let mut acceptor = Vec::new();
    if acc.is_empty() {
        if !dangling {
            return bad("acceptor position missing");
        }
    } else if acc != "?" {
        for part in acc.split('/') {
            // Trailing a/b gives the acceptor's own anomer in 1-1 links (b2-1a).
            let p = part.trim_end_matches(['a', 'b']);
            match p.parse::<u8>() {
                Ok(x) if (1..=11).contains(&x) => acceptor.push(x),
                _ if p == "?" => {}
                _ => return bad("acceptor position must be numbers separated by '/' or ?"),
            }
        }
    }
    Ok(LinkSpec { text, offset, anomer, donor, acceptor, bridge })
}

struct Parser<'a> {
    s: &'a str,
    toks: Vec<Token>,
    /// Cursor: tokens[..pos] remain; we consume from the end.
    pos: usize,
    residues: Vec<(usize, ParsedResidue)>,
    floating: bool,
    /// Monosaccharides on the current path from the reducing end (the recursion depth).
    depth: usize,
}

/// Most monosaccharides on one path from the reducing end (linear chain length plus branch
/// nesting). The parser recurses along a path; this keeps its stack small enough for any thread
/// (a 2 MiB worker stack holds several times this), so that a pathological line is an error with
/// its position, never an abort that loses a whole batch. Real glycans stay far below it (the
/// largest glycan of the 40,781 PreGlycanAA set that builds has 102 monosaccharides in all).
pub const MAX_PATH_MONOSACCHARIDES: usize = 500;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Token> {
        if self.pos == 0 {
            None
        } else {
            self.toks.get(self.pos - 1)
        }
    }
    fn pop(&mut self) -> Option<Token> {
        if self.pos == 0 {
            return None;
        }
        self.pos -= 1;
        Some(self.toks[self.pos].clone())
    }
    fn describe(&self, t: &Token) -> String {
        format!("'{}'", &self.s[t.start..t.end])
    }

    /// A residue and everything hanging off it (to its left in the string).
    fn subtree(&mut self, after: usize) -> Result<usize, GlycanError> {
        if self.depth >= MAX_PATH_MONOSACCHARIDES {
            return perr(
                after,
                format!("more than {MAX_PATH_MONOSACCHARIDES} monosaccharides on one path from the reducing end (the parser's limit)"),
            );
        }
        self.depth += 1;
        let r = self.subtree_at_depth(after);
        self.depth -= 1;
        r
    }

    fn subtree_at_depth(&mut self, after: usize) -> Result<usize, GlycanError> {
        let t = match self.pop() {
            Some(t) if t.kind == Tok::Residue => t,
            Some(t) => {
                return perr(
                    t.start,
                    format!(
                        "expected a monosaccharide before {}, found {}",
                        char_desc(self.s, after),
                        self.describe(&t)
                    ),
                )
            }
            None => return perr(after, "expected a monosaccharide before the link"),
        };
        let name = self.s[t.start..t.end].to_string();
        if name.is_empty() {
            return perr(t.start, "empty monosaccharide name");
        }
        let me = self.residues.len();
        self.residues.push((
            t.start,
            ParsedResidue { name, offset: t.start, parent: None, link: None, floating: self.floating },
        ));
        loop {
            match self.peek().map(|x| x.kind.clone()) {
                Some(Tok::Close) => {
                    let close = self.pop().unwrap();
                    let child = self.linked_subtree(close.start)?;
                    self.residues[child].1.parent = Some(me);
                    match self.pop() {
                        Some(o) if o.kind == Tok::Open => {}
                        _ => return perr(close.start, "']' has no matching '['"),
                    }
                }
                Some(Tok::Link { .. }) => {
                    let child = self.linked_subtree(t.start)?;
                    self.residues[child].1.parent = Some(me);
                    break;
                }
                _ => break,
            }
        }
        Ok(me)
    }

    fn linked_subtree(&mut self, after: usize) -> Result<usize, GlycanError> {
        let t = match self.pop() {
            Some(t) if matches!(t.kind, Tok::Link { closed: true }) => t,
            Some(t) if matches!(t.kind, Tok::Link { closed: false }) => {
                return perr(t.start, "unterminated link '(' — only the reducing end may dangle");
            }
            Some(t) => return perr(t.start, format!("expected a link like (b1-4) after {}", self.describe(&t))),
            None => return perr(after, "expected a link like (b1-4)"),
        };
        let link = parse_link(&self.s[t.start..t.end], t.start, false)?;
        let child = self.subtree(t.start)?;
        self.residues[child].1.link = Some(link);
        Ok(child)
    }
}

fn char_desc(s: &str, pos: usize) -> String {
    match s[pos.min(s.len())..].chars().next() {
        Some(c) => format!("'{c}' at character {}", pos + 1),
        None => "the end".into(),
    }
}

/// Parses an IUPAC-condensed glycan string into a tree. Positions in errors are 1-based
/// characters in `s`.
pub fn parse_iupac(s: &str) -> Result<ParsedGlycan, GlycanError> {
    if s.trim().is_empty() {
        return perr(0, "empty glycan string");
    }
    if let Some((i, c)) = s.char_indices().find(|&(_, c)| !c.is_ascii_graphic()) {
        let pos = s[..i].chars().count();
        return perr(pos, format!("unexpected character {c:?}"));
    }
    let mut toks = tokenize(s)?;
    // Dangling reducing-end link.
    let mut reducing_end = None;
    if let Some(last) = toks.last() {
        if matches!(last.kind, Tok::Link { .. }) {
            let closed = matches!(last.kind, Tok::Link { closed: true });
            let l = parse_link(&s[last.start..last.end], last.start, true)?;
            if !l.acceptor.is_empty() {
                if closed {
                    return perr(last.start, "link at the end of the glycan has nothing to attach to");
                }
                return perr(last.start - 1, "'(' is not closed by ')'");
            }
            reducing_end = Some(l);
            toks.pop();
        }
    }
    // Leading floating groups {…}{…}.
    let mut floating_groups = Vec::new();
    let mut k = 0;
    while k < toks.len() && toks[k].kind == Tok::FloatOpen {
        let open = toks[k].start;
        let end = toks[k + 1..].iter().position(|t| t.kind == Tok::FloatClose).map(|x| x + k + 1);
        let Some(end) = end else { return perr(open, "'{' has no matching '}'") };
        floating_groups.push((k + 1, end));
        k = end + 1;
    }
    if let Some(t) = toks[k..].iter().find(|t| matches!(t.kind, Tok::FloatOpen | Tok::FloatClose)) {
        return perr(t.start, "floating parts '{...}' must come first, before the main chain");
    }
    let main: Vec<Token> = toks[k..].to_vec();
    if main.is_empty() {
        return perr(s.len(), "no main chain after the floating parts");
    }
    let mut p = Parser { s, toks: main, pos: 0, residues: Vec::new(), floating: false, depth: 0 };
    p.pos = p.toks.len();
    let root = p.subtree(s.len())?;
    if let Some(t) = p.peek() {
        let msg = match t.kind {
            Tok::Open => "'[' has no matching ']'".to_string(),
            Tok::Close => "unexpected ']'".to_string(),
            _ => format!("unexpected {} (missing link between monosaccharides?)", p.describe(t)),
        };
        return perr(t.start, msg);
    }
    let mut floating_roots = Vec::new();
    for (a, b) in floating_groups {
        let mut part: Vec<Token> = toks[a..b].to_vec();
        // A floating part ends with its own link, e.g. {Neu5Ac(a2-?)}.
        let link_tok = match part.pop() {
            Some(t) if matches!(t.kind, Tok::Link { closed: true }) => t,
            Some(t) => return perr(t.start, "a floating part must end with its link, like {Fuc(a1-?)}"),
            None => return perr(toks[a - 1].start, "empty floating part '{}'"),
        };
        let link = parse_link(&s[link_tok.start..link_tok.end], link_tok.start, false)?;
        let mut fp =
            Parser { s, toks: part, pos: 0, residues: std::mem::take(&mut p.residues), floating: true, depth: 0 };
        fp.pos = fp.toks.len();
        let r = fp.subtree(link_tok.start)?;
        if let Some(t) = fp.peek() {
            return perr(t.start, format!("unexpected {} in floating part", fp.describe(t)));
        }
        fp.residues[r].1.link = Some(link);
        floating_roots.push(r);
        p.residues = fp.residues;
    }
    // Re-index residues in string order.
    let mut order: Vec<usize> = (0..p.residues.len()).collect();
    order.sort_by_key(|&i| p.residues[i].0);
    let mut new_index = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let residues = order
        .iter()
        .map(|&old| {
            let mut r = p.residues[old].1.clone();
            r.parent = r.parent.map(|x| new_index[x]);
            r
        })
        .collect();
    Ok(ParsedGlycan {
        residues,
        root: new_index[root],
        floating_roots: floating_roots.into_iter().map(|x| new_index[x]).collect(),
        reducing_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_and_root() {
        let g = parse_iupac("Neu5Ac(a2-3)[GalNAc(b1-4)]GalNAc(a1-").unwrap();
        assert_eq!(g.residues.len(), 3);
        assert_eq!(g.root, 2);
        assert_eq!(g.residues[0].name, "Neu5Ac");
        assert_eq!(g.residues[0].parent, Some(2));
        assert_eq!(g.residues[1].parent, Some(2));
        assert_eq!(g.residues[0].link.as_ref().unwrap().acceptor, vec![3]);
        assert_eq!(g.residues[1].link.as_ref().unwrap().donor, Some(1));
        assert_eq!(g.reducing_end.as_ref().unwrap().text, "a1-");
    }

    #[test]
    fn nested_branches_and_floating() {
        let g = parse_iupac("{Fuc(a1-?)}Gal(b1-4)GlcNAc(b1-2)[Gal(b1-4)[Fuc(a1-3)]GlcNAc(b1-6)]Man").unwrap();
        assert_eq!(g.residues.len(), 7);
        assert_eq!(g.floating_roots, vec![0]);
        assert!(g.residues[0].floating);
        assert_eq!(g.residues[0].parent, None);
        assert_eq!(g.root, 6);
        // Gal(b1-4) inside the branch goes to the branch's GlcNAc (index 5).
        assert_eq!(g.residues[3].parent, Some(5));
        assert_eq!(g.residues[4].parent, Some(5));
        assert_eq!(g.residues[5].parent, Some(6));
        assert_eq!(g.residues[2].parent, Some(6));
    }

    #[test]
    fn link_forms() {
        let l = parse_link("a1-P-6", 0, false).unwrap();
        assert_eq!(l.bridge, Bridge::Phosphate);
        assert_eq!(l.acceptor, vec![6]);
        let l = parse_link("b2-1a", 0, false).unwrap();
        assert_eq!((l.donor, l.acceptor.clone()), (Some(2), vec![1]));
        let l = parse_link("?1-?", 0, false).unwrap();
        assert_eq!(l.anomer, Anomer::Unknown);
        assert!(l.acceptor.is_empty());
        let l = parse_link("a2-3/6", 0, false).unwrap();
        assert_eq!(l.acceptor, vec![3, 6]);
        let l = parse_link("5-6", 0, false).unwrap();
        assert_eq!(l.donor, Some(5));
        assert!(parse_link("x1-4", 0, false).is_err());
        assert!(parse_link("b1", 0, false).is_err());
    }

    #[test]
    fn errors_have_positions() {
        for (s, pos) in [
            ("", 0),
            ("Gal(b1-4", 3),
            ("Gal(b1-4)]Glc", 9),
            ("[Gal(b1-4)Glc", 0),
            ("GalGlc)", 6),
            ("Gal(b1-4)(b1-3)Glc", 4),
            ("Gal\u{0}Glc", 3),
        ] {
            match parse_iupac(s) {
                Err(GlycanError::Parse { position, .. }) => assert_eq!(position, pos, "{s:?}"),
                other => panic!("{s:?}: {other:?}"),
            }
        }
    }
}
