"""Export: the ONNX graph and int8 file, the proofs it must pass (parity, int8 check), the bundle layout."""
