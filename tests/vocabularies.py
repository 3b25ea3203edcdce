"""A `Vocabulary` for tests that only need titles and which of them are top genres."""

from fma_genre.data.vocabulary import Genre, Vocabulary


def vocabulary_of(titles, top_level) -> Vocabulary:
    """Genre ids 1, 2, ... in the order of `titles`; `top_level`: one bool per title."""
    return Vocabulary(
        tuple(Genre(i, title, bool(top), 0) for i, (title, top) in enumerate(zip(titles, top_level), start=1))
    )
