"""The analytical cost model (Timeloop-style nest analysis, Sparseloop-style densities): a readable
reference and a compiled kernel behind one `CostModel`.  Depends on rlmap.spec only."""
