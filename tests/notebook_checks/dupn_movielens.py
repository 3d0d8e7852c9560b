# Run in the DUPN notebook's kernel after its last cell (tests/test_notebooks.py).
# The periods: up to day D, then from day D to the validation period.
assert (up_to_d["timestamp"].astype("datetime64[s]") < DAY_D).all()
assert (next_days["timestamp"].astype("datetime64[s]") >= DAY_D).all()
assert next_days["timestamp"].max() < ml.val["timestamp"].min()
assert len(history.history["val_loss"]) == EPOCHS
# Learned: NDCG@10 of one relevant movie among 20 at random is 0.227.
chance = sum(1 / np.log2(rank + 1) for rank in range(1, 11)) / 20
assert day_d_val["l2r_ndcg_at_10"] > chance + 0.03, (day_d_val, chance)
assert day_d_val["ctr_auc"] > 0.6, day_d_val
# ... and ranks well above the popularity baseline the notebook plots.
assert chance < popularity_ndcg < day_d_val["l2r_ndcg_at_10"] - 0.05, popularity_ndcg

# Attention: (rows, steps), sums to 1 over the real steps, exactly 0 on padding
# (the batch holds short histories, so there is padding to check).
real = np.asarray(mask)
assert attention.shape == (512, MAX_LEN) and (~real).any() and real.any(axis=1).all()
np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-5)
assert (attention[~real] == 0).all() and (attention[real] > 0).all()
# The weights are the model's: their pooled vector is its user representation's head.
np.testing.assert_allclose(pooled, np.asarray(representation)[:, :UNITS], atol=1e-5)
# The picture shows the plotted user's real steps and their weights.
(bars,) = [c for c in fig_attention.axes[0].containers]
np.testing.assert_allclose([b.get_width() for b in bars], attention[row, steps])
assert len(steps) == real[row].sum() and len(labels) == len(steps)
assert all(
    titles[int(m)][:20] in label
    for m, label in zip(rows["history_item"][row, steps], labels)
)
# The request 12 hours later: weights still a distribution over the same steps,
# but other ones (the query enters the scores).
assert later_attention.shape == (MAX_LEN,)
np.testing.assert_allclose(later_attention.sum(), 1.0, atol=1e-5)
assert (later_attention[~real[row]] == 0).all()
assert np.abs(later_attention - attention[row]).max() > 2e-3

# Serving split: the encoder sees no item input, and encoder + scorer == full model.
assert not {"item", "candidates_item"} & set(user_encoder.input)
assert "user_representation" in scorer.input and not {"history_item"} & set(
    scorer.input
)
assert tuple(representation.shape) == (512, UNITS + UNITS // 2)
for task in ("ctr", "l2r", "genre"):
    np.testing.assert_allclose(
        np.asarray(split_scores[task]), np.asarray(full_scores[task]), atol=1e-5
    )

# Warm start: every variable loaded, equal to day D's before training, then moved.
assert loaded == {"loaded": len(warm.variables), "missing": 0}, loaded
assert reused
assert any(
    not np.array_equal(a, b) for a, b in zip(warm.get_weights(), model.get_weights())
)
for column in comparison:
    assert np.isfinite(comparison[column].to_numpy()).all(), comparison
assert (
    len(warm_history.history["val_loss"])
    == len(cold_history.history["val_loss"])
    == NEXT_EPOCHS
)
# Starting from day D's weights beats starting from scratch on the same days.
assert comparison.loc["loss", "warm start"] < comparison.loc["loss", "cold start"], (
    comparison
)
ndcg_row = comparison.loc["l2r_ndcg_at_10"]
assert ndcg_row["warm start"] > ndcg_row["cold start"] + 0.05, comparison
assert ndcg_row["warm start"] > ndcg_row["day D's model"] - 0.02, comparison
