"""What is mapped onto what: layers and networks, architectures, mappings, the loop vocabulary, YAML I/O
and presets, and the one error type every user mistake becomes.  Imports nothing else of rlmap."""
