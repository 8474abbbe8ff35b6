//! GlycanML's protein–glycan interaction task as `cargo xtask data` rebuilds it from
//! glycowork 1.11.0's `v12_glycan_binding.csv`: `interaction_proteins.csv`
//! (`protein,name,sequence,split`, split by sequence) and `interaction.csv`
//! (`protein,glycan,value`: a z-scored binding value of one protein to one glycan; a pair is in
//! its protein's split).

use std::path::Path;

use super::{parse_split, read_checked, Split, TaskError};

/// One protein of the interaction task.
#[derive(Clone, Debug, PartialEq)]
pub struct InteractionProtein {
    /// Its name in the binding table (`protein` column; may be empty).
    pub name: String,
    /// Amino-acid sequence (one-letter codes).
    pub sequence: String,
    /// Its split (every pair of the protein is in it).
    pub split: Split,
}

/// The interaction task: proteins and `(protein, glycan, value)` pairs.
#[derive(Clone, Debug)]
pub struct Interaction {
    /// Proteins; a pair's `protein` indexes this.
    pub proteins: Vec<InteractionProtein>,
    /// Distinct glycans (IUPAC-condensed), sorted; a pair's `glycan` indexes this.
    pub glycans: Vec<String>,
    /// `(protein, glycan, value)` pairs in file order.
    pub pairs: Vec<(u32, u32, f32)>,
}

/// Loads `<dir>/interaction_proteins.csv` and `<dir>/interaction.csv` (checked against the
/// manifest when it lists them).
pub fn load_interaction(dir: &Path) -> Result<Interaction, TaskError> {
    let (bytes, p) = read_checked(dir, "interaction_proteins")?;
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    let mut proteins = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let fmt = |message: String| TaskError::Format { path: p.clone(), line: i + 2, message };
        let rec = rec.map_err(|e| fmt(e.to_string()))?;
        if rec.len() != 4 {
            return Err(fmt(format!("{} fields, expected protein,name,sequence,split", rec.len())));
        }
        if rec[0].parse::<usize>().ok() != Some(i) {
            return Err(fmt(format!("protein id {:?} where {i} was expected (ids count rows from 0)", &rec[0])));
        }
        let Some(split) = parse_split(&rec[3]) else { return Err(fmt(format!("unknown split {:?}", &rec[3]))) };
        if rec[2].is_empty() {
            return Err(fmt("empty sequence".into()));
        }
        proteins.push(InteractionProtein { name: rec[1].to_string(), sequence: rec[2].to_string(), split });
    }
    let (bytes, p) = read_checked(dir, "interaction")?;
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    let mut raw: Vec<(u32, String, f32)> = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let fmt = |message: String| TaskError::Format { path: p.clone(), line: i + 2, message };
        let rec = rec.map_err(|e| fmt(e.to_string()))?;
        if rec.len() != 3 {
            return Err(fmt(format!("{} fields, expected protein,glycan,value", rec.len())));
        }
        let protein = match rec[0].parse::<u32>() {
            Ok(k) if (k as usize) < proteins.len() => k,
            _ => return Err(fmt(format!("protein {:?} is not one of the {} proteins", &rec[0], proteins.len()))),
        };
        let value = match rec[2].parse::<f32>() {
            Ok(v) if v.is_finite() => v,
            _ => return Err(fmt(format!("value {:?} is not a finite number", &rec[2]))),
        };
        if rec[1].is_empty() {
            return Err(fmt("empty glycan".into()));
        }
        raw.push((protein, rec[1].to_string(), value));
    }
    let mut glycans: Vec<String> = raw.iter().map(|r| r.1.clone()).collect();
    glycans.sort();
    glycans.dedup();
    let pairs = raw.into_iter().map(|(p, g, v)| (p, glycans.binary_search(&g).unwrap_or(0) as u32, v)).collect();
    Ok(Interaction { proteins, glycans, pairs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(format!("{name}.csv")), text).unwrap();
    }

    #[test]
    fn reads_pairs_and_refuses_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "interaction_proteins", "protein,name,sequence,split\n0,\"a, b\",MKV,train\n1,,GGA,test\n");
        write(dir.path(), "interaction", "protein,glycan,value\n0,\"Gal(b1-4)Glc\",0.5\n1,Man,-1\n0,Man,2\n");
        let t = load_interaction(dir.path()).unwrap();
        assert_eq!(t.proteins[0].name, "a, b");
        assert_eq!(t.proteins[1].split, Split::Test);
        assert_eq!(t.glycans, vec!["Gal(b1-4)Glc".to_string(), "Man".to_string()]);
        assert_eq!(t.pairs, vec![(0, 0, 0.5), (1, 1, -1.0), (0, 1, 2.0)]);

        write(dir.path(), "interaction", "protein,glycan,value\n2,Man,1\n");
        let e = load_interaction(dir.path()).unwrap_err().to_string();
        assert!(e.contains("interaction.csv:2") && e.contains("not one of the 2 proteins"), "{e}");
        write(dir.path(), "interaction", "protein,glycan,value\n0,Man,nan\n");
        assert!(load_interaction(dir.path()).unwrap_err().to_string().contains("not a finite number"));
        write(dir.path(), "interaction_proteins", "protein,name,sequence,split\n1,x,MKV,train\n");
        assert!(load_interaction(dir.path()).unwrap_err().to_string().contains("ids count rows from 0"));
    }
}
