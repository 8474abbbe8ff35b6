//! A glycan tree written as an IUPAC-condensed string (the crate's pivot: every other notation
//! is read into a tree, written here, and then parsed and built like any IUPAC input), with the
//! span of each residue name so that errors point back into the original notation.

/// A link from a residue to its parent.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Link {
    /// `a`, `b` or `?`.
    pub anomer: char,
    /// The donor's carbon (`None`: unknown).
    pub donor: Option<u8>,
    /// Acceptor candidates (empty: unknown).
    pub acceptor: Vec<u8>,
    /// A bridge written inside the link (`P` for a phosphodiester).
    pub bridge: Option<&'static str>,
}

/// One residue.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// IUPAC-condensed residue name.
    pub name: String,
    /// Byte offset of the residue in the original notation.
    pub src: usize,
    /// Parent (`None` for the root and for floating residues).
    pub parent: Option<usize>,
    /// Link to the parent (or, for a floating residue, its donor side).
    pub link: Option<Link>,
}

/// A tree to write.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    /// Residues attached to an unknown parent (`{Fuc(a1-?)}`).
    pub floating: Vec<usize>,
    /// Reducing-end anomer and carbon, when given (`(b1-` at the end).
    pub reducing: Option<(char, Option<u8>)>,
}

/// The written string and, per residue, the byte span of its name in it.
pub(crate) struct Written {
    pub text: String,
    pub spans: Vec<(usize, usize)>,
}

fn link_text(l: &Link) -> String {
    let donor = l.donor.map_or("?".to_string(), |d| d.to_string());
    let acceptor = if l.acceptor.is_empty() {
        "?".to_string()
    } else {
        l.acceptor.iter().map(|a| a.to_string()).collect::<Vec<_>>().join("/")
    };
    match l.bridge {
        Some(b) => format!("{}{donor}-{b}-{acceptor}", l.anomer),
        None => format!("{}{donor}-{acceptor}", l.anomer),
    }
}

impl Tree {
    fn children(&self, k: usize) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&c| self.nodes[c].parent == Some(k)).collect()
    }

    fn size(&self, k: usize, depth: usize) -> Result<usize, String> {
        if depth > self.nodes.len() {
            return Err("the linkages form a cycle, which IUPAC-condensed cannot write".into());
        }
        let mut n = 1;
        for c in self.children(k) {
            n += self.size(c, depth + 1)?;
        }
        Ok(n)
    }

    /// Writes the subtree of `k`: the main child's subtree, the other children in brackets,
    /// then the residue and its link.
    fn subtree(&self, k: usize, out: &mut Written, depth: usize) -> Result<(), String> {
        if depth > self.nodes.len() {
            return Err("the linkages form a cycle, which IUPAC-condensed cannot write".into());
        }
        let mut kids = self.children(k);
        // Main chain: the largest subtree (ties: the lowest acceptor position); branches in
        // ascending acceptor position.
        let mut keyed = Vec::with_capacity(kids.len());
        for c in kids.drain(..) {
            let acc = self.nodes[c].link.as_ref().and_then(|l| l.acceptor.first().copied()).unwrap_or(u8::MAX);
            keyed.push((self.size(c, depth + 1)?, acc, c));
        }
        keyed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        if let Some(&(_, _, main)) = keyed.first() {
            self.subtree(main, out, depth + 1)?;
        }
        let mut branches: Vec<_> = keyed.iter().skip(1).collect();
        branches.sort_by_key(|b| (b.1, b.2));
        for &&(_, _, c) in &branches {
            out.text.push('[');
            self.subtree(c, out, depth + 1)?;
            out.text.push(']');
        }
        let start = out.text.len();
        out.text.push_str(&self.nodes[k].name);
        out.spans[k] = (start, out.text.len());
        if let Some(l) = &self.nodes[k].link {
            out.text.push('(');
            out.text.push_str(&link_text(l));
            out.text.push(')');
        }
        Ok(())
    }

    /// Writes the tree rooted at `root`.
    pub fn write(&self, root: usize) -> Result<Written, String> {
        let mut out = Written { text: String::new(), spans: vec![(usize::MAX, usize::MAX); self.nodes.len()] };
        for &f in &self.floating {
            out.text.push('{');
            self.subtree(f, &mut out, 0)?;
            out.text.push('}');
        }
        self.subtree(root, &mut out, 0)?;
        if let Some((anomer, carbon)) = self.reducing {
            out.text.push('(');
            out.text.push(anomer);
            out.text.push_str(&carbon.map_or("?".to_string(), |c| c.to_string()));
            out.text.push('-');
        }
        if let Some(k) = out.spans.iter().position(|s| s.0 == usize::MAX) {
            return Err(format!("residue {} is attached to nothing that reaches the reducing end", k + 1));
        }
        Ok(out)
    }

    /// The original offset of the residue whose name holds (or precedes) `pos` in `written`.
    pub fn source_of(&self, written: &Written, pos: usize) -> usize {
        let mut best: Option<(usize, usize)> = None;
        for (k, &(s, _)) in written.spans.iter().enumerate() {
            if s <= pos && best.is_none_or(|(bs, _)| s > bs) {
                best = Some((s, k));
            }
        }
        best.map_or(0, |(_, k)| self.nodes[k].src)
    }
}
