"""The compression library (rank 1): masked layers, pruning rules, weight sharing, Huffman
coding, storage accounting, the relative-index format, model surgery.
"""
