"""Hardware-mapping co-design: a design space over a template architecture, optimisers that search the
hardware and every layer's mapping under an area budget, and what a designer takes away (rlmap codesign)."""
