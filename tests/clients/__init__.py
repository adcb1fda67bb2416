"""The stock client libraries (transformers, peft, datasets, huggingface_hub cards, HfFileSystem, search)
against a real `cove serve` (tests/conftest.py). Upload flows run twice through the `transfer` fixture:
classic LFS (HF_HUB_DISABLE_XET=1) and the default Xet path. Models and data are tiny and built locally
(tiny.py): no downloads from the internet."""
