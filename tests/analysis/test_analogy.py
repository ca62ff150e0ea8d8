"""Analogies with Linzen's baselines (issue 20): exact offsets are solved; without the exclusion the offset
method answers b when the offset is tiny; ONLY-B is b's nearest neighbour; every method is invariant to a
rotation; 3CosMul is Levy & Goldberg's formula; relations from files, morphology and metadata."""

from __future__ import annotations

import numpy as np
import pytest

from analogy_tables import offset_pairs, offset_table
from lstmviz.analysis.analogy import (
    EPSILON,
    METHODS,
    answer,
    evaluate,
    morphology_pairs,
    morphology_relations,
    nearest_neighbours,
    query,
    questions_from_pairs,
    relations_from_file,
    report_text,
)
from lstmviz.analysis.embedding_tables import EmbeddingTable
from lstmviz.analysis.analogy import Relation


def relations_of(n_classes=12):
    return [Relation("r0 -> r1", tuple(questions_from_pairs(offset_pairs(n_classes, 0, 1)))),
            Relation("r0 -> r2", tuple(questions_from_pairs(offset_pairs(n_classes, 0, 2))))]


def test_exact_offsets_are_solved_by_3cosadd_with_the_premises_excluded():
    table = offset_table()
    report = evaluate(table, relations_of(), exclude=True)
    assert report.questions == {"r0 -> r1": 132, "r0 -> r2": 132}  # 12 pairs: 12 x 11 ordered questions
    assert report.accuracy(None, "3cosadd") == 1.0
    assert report.accuracy(None, "3cosmul") == 1.0
    assert report.accuracy(None, "reverse-add") == 1.0  # a consistent offset works both ways
    assert report.accuracy(None, "add-opposite") == 0.0  # the offset subtracted: never b*
    # the baselines that ignore the offset cannot tell which relative of b is asked for
    assert report.accuracy(None, "only-b") < 0.6
    assert report.chance["r0 -> r1"] == pytest.approx(1 / (len(table) - 3))
    text = report_text(report)
    assert "premises excluded" in text and "3CosAdd" in text and "100.0" in text


def test_without_exclusion_a_tiny_offset_returns_b_itself():
    # b-side tokens: class + relation + noise 0.3 per coordinate; the premises a, a* of every question
    # differ by an offset of 1e-3 (as scream / screaming are close): ‖â* − â‖ is small against the
    # noise that separates b from every other row, so the offset method, premises not excluded, answers b
    table = offset_table(n_classes=10, n_relations=2, noise=0.3, seed=3)
    rng = np.random.default_rng(4)
    a = rng.normal(size=table.dim)
    a_star = a + 1e-3 * rng.normal(size=table.dim)
    table = EmbeddingTable((*table.names, "a", "a*"), np.vstack([table.vectors, a, a_star]), "with a close pair")
    questions = [("a", "a*", f"c{c}_r0", f"c{c}_r1") for c in range(10)]
    unit = table.unit.astype(np.float64)
    gap = np.linalg.norm(unit[table.index("a*")] - unit[table.index("a")])
    for _a, _as, b, _bs in questions:  # the sufficient condition: x̂·(b̂ + δ) <= x̂·b̂ + ‖δ‖ < 1 - ‖δ‖ <= b̂·(b̂ + δ)
        cos = unit @ unit[table.index(b)]
        cos[table.index(b)] = -np.inf
        assert 1 - cos.max() > 2 * gap
    rows, _ = answer(table, questions, "3cosadd", exclude=False)
    b_rows = [table.index(b) for _a, _as, b, _bs in questions]
    assert rows[:, 0].tolist() == b_rows
    rows, _ = answer(table, questions, "3cosadd", exclude=True)
    assert all(row != b for row, b in zip(rows[:, 0], b_rows))  # excluded: never b
    report = evaluate(table, [Relation("tiny", tuple(questions))], ["3cosadd"], exclude=False)
    assert report.accuracy(None, "3cosadd") == 0.0 and report.chance["tiny"] == pytest.approx(1 / len(table))


def test_only_b_is_the_nearest_neighbour_of_b_without_the_premises():
    table = offset_table(noise=0.3, seed=5)
    questions = questions_from_pairs(offset_pairs(12, 1, 2), max_questions=40, seed=1)
    rows, scores = answer(table, questions, "only-b", exclude=True)
    unit = table.unit.astype(np.float64)
    for (a, a_star, b, _b_star), row, score in zip(questions, rows[:, 0], scores[:, 0]):
        cos = unit @ unit[table.index(b)]
        for name in (a, a_star, b):
            cos[table.index(name)] = -np.inf
        assert row == int(np.argmax(cos)) and score == pytest.approx(cos.max(), abs=1e-6)
        neighbours = nearest_neighbours(table, b, 1, exclude=[a, a_star])
        assert neighbours[0][0] == table.names[row]
    # without exclusion ONLY-B answers b itself (cos(b, b) = 1)
    rows, _ = answer(table, questions, "only-b", exclude=False)
    assert rows[:, 0].tolist() == [table.index(q[2]) for q in questions]


def test_nearest_neighbours_rank_by_cosine_and_leave_the_token_out():
    table = EmbeddingTable(("x", "near", "far", "opposite"), np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]]), "t")
    got = nearest_neighbours(table, "x", 3)
    assert [n for n, _ in got] == ["near", "far", "opposite"]
    assert got[0][1] == pytest.approx(0.9 / np.hypot(0.9, 0.1)) and got[2][1] == pytest.approx(-1.0)
    assert [n for n, _ in nearest_neighbours(table, np.array([0.0, 2.0]), 1)] == ["far"]
    with pytest.raises(KeyError, match="not in the table"):
        nearest_neighbours(table, "nope")


def test_3cosmul_is_levy_and_goldbergs_shifted_product():
    table = offset_table(noise=0.5, seed=7)
    a, a_star, b = "c0_r0", "c0_r1", "c3_r0"
    got = query(table, a, a_star, b, "3cosmul", k=5)
    unit = table.unit.astype(np.float64)
    c = lambda name: (unit @ unit[table.index(name)] + 1) / 2  # noqa: E731
    score = c(a_star) * c(b) / (c(a) + EPSILON)
    for name in (a, a_star, b):
        score[table.index(name)] = -np.inf
    best = np.argsort(-score)[:5]
    assert [n for n, _ in got] == [table.names[i] for i in best]
    assert [s for _, s in got] == pytest.approx(score[best].tolist(), rel=1e-5)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_is_invariant_to_a_rotation(method):
    table = offset_table(noise=0.4, seed=11)
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(table.dim, table.dim)))
    rotated = EmbeddingTable(table.names, table.vectors.astype(np.float64) @ q, "rotated")
    questions = questions_from_pairs(offset_pairs(12, 0, 2), max_questions=60, seed=4)
    for exclude in (True, False):
        rows, scores = answer(table, questions, method, exclude=exclude, k=3)
        rows_r, scores_r = answer(rotated, questions, method, exclude=exclude, k=3)
        np.testing.assert_allclose(scores, scores_r, atol=1e-5)
        differ = rows != rows_r
        # only exact ties may swap (IGNORE-A without exclusion: cos(a*, a* + b) = cos(b, a* + b))
        assert differ.sum() <= len(questions) and np.all(np.isclose(scores[differ], scores_r[differ], atol=1e-5))
        for i, j in zip(*np.nonzero(differ)):  # the row swapped in scores the same in the original table
            every, every_score = answer(table, [questions[i]], method, exclude=exclude, k=len(table))
            assert every_score[0][list(every[0]).index(rows_r[i, j])] == pytest.approx(scores[i, j], abs=1e-5)


def test_a_vectorised_chunked_answer_equals_one_question_at_a_time(monkeypatch):
    import lstmviz.analysis.analogy as analogy

    table = offset_table(noise=0.4, seed=13)
    questions = questions_from_pairs(offset_pairs(12, 0, 1), max_questions=50, seed=2)
    monkeypatch.setattr(analogy, "CHUNK", 7)
    rows, _ = answer(table, questions, "ignore-a", k=4)
    for question, row in zip(questions, rows):
        assert [table.index(n) for n, _ in query(table, *question[:3], "ignore-a", k=4)] == row.tolist()


def test_reverse_methods_need_b_star():
    table = offset_table()
    with pytest.raises(ValueError, match="needs b\\* as well"):
        answer(table, [("c0_r0", "c0_r1", "c1_r0")], "reverse-add")
    with pytest.raises(ValueError, match="unknown analogy method"):
        answer(table, [("c0_r0", "c0_r1", "c1_r0")], "3cosdiv")


def test_gensim_agrees_when_installed():
    gensim_models = pytest.importorskip("gensim.models")
    table = offset_table(noise=0.5, seed=17)
    vectors = gensim_models.KeyedVectors(table.dim)
    vectors.add_vectors(list(table.names), table.vectors)
    for a, a_star, b, _ in questions_from_pairs(offset_pairs(12, 0, 1), max_questions=20, seed=3):
        ours = query(table, a, a_star, b, "3cosadd", k=3)
        theirs = vectors.most_similar(positive=[a_star, b], negative=[a], topn=3)
        assert [n for n, _ in ours] == [n for n, _ in theirs]
        ours = query(table, a, a_star, b, "3cosmul", k=3)
        theirs = vectors.most_similar_cosmul(positive=[a_star, b], negative=[a], topn=3)
        assert [n for n, _ in ours] == [n for n, _ in theirs]


def test_questions_from_pairs_are_every_ordered_pair_or_a_seeded_sample():
    pairs = [("a", "as"), ("b", "bs"), ("c", "cs")]
    every = questions_from_pairs(pairs)
    assert len(every) == 6 and ("a", "as", "b", "bs") in every and ("b", "bs", "a", "as") in every
    assert all(q[0] != q[2] for q in every)
    many = [(f"w{i}", f"w{i}s") for i in range(30)]
    sample = questions_from_pairs(many, max_questions=50, seed=1)
    assert len(set(sample)) == 50 and all(q[0] != q[2] for q in sample)
    assert sample == questions_from_pairs(many, max_questions=50, seed=1)


def test_morphology_pairs_are_found_in_the_vocabulary():
    names = ["dog", "dogs", "cat", "cats", "walk", "walked", "walking", "bake", "baked", "baking", "quick",
             "quickly", "slow", "slowly", "as", "a", "<unk>", "N", "glass", "glasss"]
    found = morphology_pairs(names)
    assert found["plural -s"] == [("cat", "cats"), ("dog", "dogs")]  # not glass/glasss: x ends in s
    assert found["past -ed"] == [("bake", "baked"), ("walk", "walked")]
    assert found["gerund -ing"] == [("bake", "baking"), ("walk", "walking")]
    assert found["adverb -ly"] == [("quick", "quickly"), ("slow", "slowly")]
    rng = np.random.default_rng(0)
    table = EmbeddingTable(tuple(names), rng.normal(size=(len(names), 4)), "vocab")
    relations = morphology_relations(table)
    assert {r.name for r in relations} == {"plural -s", "past -ed", "gerund -ing", "adverb -ly"}
    assert all(len(r.questions) == 2 for r in relations)
    bare = EmbeddingTable(("x", "y", "z"), rng.normal(size=(3, 4)), "bare")
    with pytest.raises(ValueError, match="no morphological pairs"):
        morphology_relations(bare)


def test_a_relations_file_is_read_and_missing_words_are_counted(tmp_path):
    table = offset_table()
    path = tmp_path / "questions.txt"
    path.write_text(": first\nc0_r0 c0_r1 c1_r0 c1_r1\nc0_r0 c0_r1 nope c1_r1\n# comment\n\n"
                    ": second\nc2_r0 c2_r2 c3_r0 c3_r2\n")
    relations = relations_from_file(path, table)
    assert [(r.name, len(r.questions), r.skipped) for r in relations] == [("first", 1, 1), ("second", 1, 0)]
    report = evaluate(table, relations)
    assert report.accuracy(None, "3cosadd") == 1.0 and "skipped" in report_text(report)
    bad = tmp_path / "bad.txt"
    bad.write_text(": r\na b c\n")
    with pytest.raises(ValueError, match="line 2 has 3 words"):
        relations_from_file(bad)
    bad.write_text("a b c d\n")
    with pytest.raises(ValueError, match="before any `: relation` line"):
        relations_from_file(bad)
    bad.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        relations_from_file(bad)


def test_the_report_table_has_one_row_per_relation_then_all():
    report = evaluate(offset_table(), relations_of(), ["3cosadd", "only-b"], exclude=False)
    columns = report.table()
    assert columns["relation"] == ["r0 -> r1", "r0 -> r2", "all"]
    assert columns["questions"] == [132, 132, 264]
    assert set(columns) == {"relation", "questions", "3cosadd", "only-b", "chance", "exclude_premises"}
    assert columns["exclude_premises"] == [False] * 3
