//! The ESM alphabets and their tokenizer.
//!
//! ESM-2's alphabet has 33 tokens: `<cls> <pad> <eos> <unk>`, the 27 residue symbols
//! `L A G V S E R T I D P K Q N F Y M H W C X B U Z O . -`, `<null_1>` (padding the table to a
//! multiple of 8) and `<mask>`. ESM-AA appends 26 atom tokens (`C_a N_a O_a …`), 59 in all, in
//! exactly the official order, so token ids and embedding rows match the released checkpoints.
//!
//! The tokenizer is a Hugging Face `tokenizers` word-level model: whitespace is ignored, `<…>`
//! specials and atom tokens are matched whole, every other character is one residue token, and
//! unknown symbols become `<unk>`. [`Alphabet::tokenizer_json`] writes it as `tokenizer.json`
//! (readable by the Python `tokenizers` package too).

use serde_json::{json, Value};

use crate::CodeSwitchError;

/// The 27 residue symbols of the ESM alphabets, in vocabulary order.
pub const RESIDUE_TOKENS: [&str; 27] = [
    "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U",
    "Z", "O", ".", "-",
];

/// The 26 atom tokens of ESM-AA, in vocabulary order (ids 33..58).
pub const ATOM_TOKENS: [&str; 26] = [
    "C_a", "N_a", "O_a", "S_a", "H_a", "Cl_a", "F_a", "Br_a", "I_a", "Si_a", "P_a", "B_a", "Na_a", "K_a", "Al_a",
    "Ca_a", "Sn_a", "As_a", "Hg_a", "Fe_a", "Zn_a", "Cr_a", "Se_a", "Gd_a", "Au_a", "Li_a",
];

/// A token vocabulary with the ids of its special tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct Alphabet {
    tokens: Vec<String>,
    /// `<cls>` (prepended to every sequence).
    pub cls: u32,
    /// `<pad>`.
    pub pad: u32,
    /// `<eos>` (appended to every sequence).
    pub eos: u32,
    /// `<unk>`.
    pub unk: u32,
    /// `<mask>`.
    pub mask: u32,
}

impl Alphabet {
    /// ESM-2's 33-token alphabet.
    pub fn esm2() -> Alphabet {
        let mut t: Vec<String> = ["<cls>", "<pad>", "<eos>", "<unk>"].iter().map(|s| s.to_string()).collect();
        t.extend(RESIDUE_TOKENS.iter().map(|s| s.to_string()));
        t.push("<null_1>".into());
        t.push("<mask>".into());
        Alphabet::from_tokens(t).expect("built-in alphabet")
    }

    /// ESM-AA's 59-token alphabet: ESM-2's followed by the atom tokens.
    pub fn esm_aa() -> Alphabet {
        let mut t = Alphabet::esm2().tokens;
        t.extend(ATOM_TOKENS.iter().map(|s| s.to_string()));
        Alphabet::from_tokens(t).expect("built-in alphabet")
    }

    /// An alphabet from its tokens in id order; it must contain the five special tokens.
    pub fn from_tokens(tokens: Vec<String>) -> Result<Alphabet, CodeSwitchError> {
        let find = |name: &str| {
            tokens
                .iter()
                .position(|t| t == name)
                .map(|i| i as u32)
                .ok_or_else(|| CodeSwitchError::Vocabulary(format!("the vocabulary has no {name} token")))
        };
        for (i, t) in tokens.iter().enumerate() {
            if t.is_empty() || t.chars().any(char::is_whitespace) {
                return Err(CodeSwitchError::Vocabulary(format!("token {i} ({t:?}) is empty or contains whitespace")));
            }
            if tokens[..i].contains(t) {
                return Err(CodeSwitchError::Vocabulary(format!("token {t:?} appears twice")));
            }
        }
        Ok(Alphabet {
            cls: find("<cls>")?,
            pad: find("<pad>")?,
            eos: find("<eos>")?,
            unk: find("<unk>")?,
            mask: find("<mask>")?,
            tokens,
        })
    }

    /// Reads a `vocab.txt` (one token per line, as in the Hugging Face ESM repositories).
    pub fn from_vocab_txt(text: &str) -> Result<Alphabet, CodeSwitchError> {
        Alphabet::from_tokens(text.lines().map(|l| l.trim()).filter(|l| !l.is_empty()).map(String::from).collect())
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the alphabet is empty (never, for a valid one).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Tokens in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Id of a token, if present.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.tokens.iter().position(|t| t == token).map(|i| i as u32)
    }

    /// Token of an id.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Id of the residue token for a one-letter code (`<unk>` for a letter not in the alphabet).
    pub fn residue_id(&self, one_letter: char) -> u32 {
        let mut b = [0u8; 4];
        self.id(one_letter.encode_utf8(&mut b)).unwrap_or(self.unk)
    }

    /// Id of the atom token for an element symbol (`"C"` → `C_a`), if the alphabet has it.
    pub fn atom_id(&self, element_symbol: &str) -> Option<u32> {
        self.id(&format!("{element_symbol}_a"))
    }

    /// Whether the id is an atom token (`X_a`).
    pub fn is_atom(&self, id: u32) -> bool {
        self.token(id).is_some_and(|t| t.ends_with("_a") && t.len() > 2)
    }

    /// The `tokenizer.json` of this alphabet (Hugging Face `tokenizers` format).
    pub fn tokenizer_json(&self) -> String {
        // Multi-character tokens are matched whole, longest first; any other character is a token.
        let mut multi: Vec<&str> = self.tokens.iter().map(String::as_str).filter(|t| t.chars().count() > 1).collect();
        multi.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let escaped: Vec<String> = multi.iter().map(|t| regex_escape(t)).collect();
        let pattern = format!("{}|.", escaped.join("|"));
        let vocab: serde_json::Map<String, Value> =
            self.tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
        let specials = [self.cls, self.pad, self.eos, self.unk, self.mask];
        let added: Vec<Value> = specials
            .iter()
            .map(|&id| {
                json!({"id": id, "content": self.tokens[id as usize], "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let (cls, eos) = (&self.tokens[self.cls as usize], &self.tokens[self.eos as usize]);
        let special = |t: &str| json!({"SpecialToken": {"id": t, "type_id": 0}});
        let seq = |s: &str| json!({"Sequence": {"id": s, "type_id": 0}});
        let doc = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "WhitespaceSplit"},
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false}
            ]},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [special(cls), seq("A"), special(eos)],
                "pair": [special(cls), seq("A"), special(eos), seq("B"), special(eos)],
                "special_tokens": {
                    cls.clone(): {"id": cls, "ids": [self.cls], "tokens": [cls]},
                    eos.clone(): {"id": eos, "ids": [self.eos], "tokens": [eos]}
                }
            },
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": self.tokens[self.unk as usize]}
        });
        serde_json::to_string_pretty(&doc).expect("json")
    }

    /// The tokenizer of this alphabet.
    pub fn tokenizer(&self) -> Result<tokenizers::Tokenizer, CodeSwitchError> {
        tokenizers::Tokenizer::from_bytes(self.tokenizer_json().as_bytes())
            .map_err(|e| CodeSwitchError::Vocabulary(format!("cannot build the tokenizer: {e}")))
    }

    /// Reads an alphabet from a `tokenizer.json` with a word-level model (ids must be 0..n).
    pub fn from_tokenizer_json(text: &str) -> Result<Alphabet, CodeSwitchError> {
        let bad = |m: &str| CodeSwitchError::Vocabulary(format!("tokenizer.json: {m}"));
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let vocab = v.pointer("/model/vocab").and_then(Value::as_object).ok_or_else(|| bad("no model.vocab object"))?;
        let mut tokens = vec![String::new(); vocab.len()];
        for (t, id) in vocab {
            let id = id
                .as_u64()
                .filter(|&i| (i as usize) < tokens.len())
                .ok_or_else(|| bad(&format!("bad id for {t:?}")))?;
            tokens[id as usize] = t.clone();
        }
        Alphabet::from_tokens(tokens)
    }

    /// Tokenizes a sequence (residues, specials and atom tokens; whitespace ignored) and adds
    /// `<cls>`/`<eos>`.
    pub fn encode(&self, tokenizer: &tokenizers::Tokenizer, text: &str) -> Result<Vec<u32>, CodeSwitchError> {
        let enc =
            tokenizer.encode(text, true).map_err(|e| CodeSwitchError::Vocabulary(format!("cannot tokenize: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_order() {
        let a = Alphabet::esm_aa();
        assert_eq!(a.len(), 59);
        assert_eq!((a.cls, a.pad, a.eos, a.unk, a.mask), (0, 1, 2, 3, 32));
        assert_eq!(a.id("L"), Some(4));
        assert_eq!(a.id("-"), Some(30));
        assert_eq!(a.id("<null_1>"), Some(31));
        assert_eq!(a.id("C_a"), Some(33));
        assert_eq!(a.id("Li_a"), Some(58));
        assert_eq!(Alphabet::esm2().len(), 33);
    }

    #[test]
    fn tokenizes_residues_specials_and_atoms() {
        let a = Alphabet::esm_aa();
        let t = a.tokenizer().unwrap();
        let ids = a.encode(&t, "MK<mask>C C_a Cl_a S_a Ca_a\nQ?").unwrap();
        let toks: Vec<&str> = ids.iter().map(|&i| a.token(i).unwrap()).collect();
        assert_eq!(toks, ["<cls>", "M", "K", "<mask>", "C", "C_a", "Cl_a", "S_a", "Ca_a", "Q", "<unk>", "<eos>"]);
        let back = Alphabet::from_tokenizer_json(&a.tokenizer_json()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn vocab_txt_needs_specials() {
        assert!(Alphabet::from_vocab_txt("<cls>\n<pad>\nA\n").is_err());
        let txt: String = Alphabet::esm2().tokens().iter().map(|t| format!("{t}\n")).collect();
        assert_eq!(Alphabet::from_vocab_txt(&txt).unwrap(), Alphabet::esm2());
    }
}
