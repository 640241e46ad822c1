"""What the guests do: the offsets a fio job issues, with fio's semantics and distributions."""
