"""Where bytes live: the blob store (LFS objects, Xet xorbs and shards) and git repos."""
