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

/// Children lists and subtree sizes, computed once per write.
struct Shape {
    children: Vec<Vec<usize>>,
    size: Vec<usize>,
}

impl Tree {
    fn shape(&self) -> Result<Shape, String> {
        let n = self.nodes.len();
        let mut children = vec![Vec::new(); n];
        for (k, node) in self.nodes.iter().enumerate() {
            if let Some(p) = node.parent {
                children[p].push(k);
            }
        }
        // Sizes bottom-up in an order where every child precedes its parent; a cycle leaves
        // some node unordered.
        let mut order = Vec::with_capacity(n);
        let mut stack: Vec<usize> = (0..n).filter(|&k| self.nodes[k].parent.is_none()).collect();
        while let Some(k) = stack.pop() {
            order.push(k);
            stack.extend(&children[k]);
        }
        if order.len() != n {
            return Err("the linkages form a cycle, which IUPAC-condensed cannot write".into());
        }
        let mut size = vec![1; n];
        for &k in order.iter().rev() {
            if let Some(p) = self.nodes[k].parent {
                size[p] += size[k];
            }
        }
        Ok(Shape { children, size })
    }

    /// Writes the subtree of `k`: the main child's subtree, the other children in brackets,
    /// then the residue and its link.
    fn subtree(&self, shape: &Shape, k: usize, out: &mut Written) {
        // Main chain: the largest subtree (ties: the lowest acceptor position); branches in
        // ascending acceptor position.
        let acceptor =
            |c: usize| self.nodes[c].link.as_ref().and_then(|l| l.acceptor.first().copied()).unwrap_or(u8::MAX);
        let kids = &shape.children[k];
        let main = kids.iter().copied().min_by_key(|&c| (std::cmp::Reverse(shape.size[c]), acceptor(c), c));
        if let Some(m) = main {
            self.subtree(shape, m, out);
            let mut branches: Vec<usize> = kids.iter().copied().filter(|&c| c != m).collect();
            branches.sort_by_key(|&c| (acceptor(c), c));
            for c in branches {
                out.text.push('[');
                self.subtree(shape, c, out);
                out.text.push(']');
            }
        }
        let start = out.text.len();
        out.text.push_str(&self.nodes[k].name);
        out.spans[k] = (start, out.text.len());
        if let Some(l) = &self.nodes[k].link {
            out.text.push('(');
            out.text.push_str(&link_text(l));
            out.text.push(')');
        }
    }

    /// Writes the tree rooted at `root`.
    pub fn write(&self, root: usize) -> Result<Written, String> {
        let shape = self.shape()?;
        let mut out = Written { text: String::new(), spans: vec![(usize::MAX, usize::MAX); self.nodes.len()] };
        for &f in &self.floating {
            out.text.push('{');
            self.subtree(&shape, f, &mut out);
            out.text.push('}');
        }
        self.subtree(&shape, root, &mut out);
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
