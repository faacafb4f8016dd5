using FedAvg.Actors.Server;

namespace FedAvg.Actors.Tests;

/// <summary>The norm rule's arithmetic, on values worked out by hand.</summary>
public sealed class UpdateNormRuleTests
{
    [Fact]
    public void The_norm_of_an_update_is_the_euclidean_distance_to_the_global_weights()
    {
        // Δ = (3, 4, 0, 12) − (0, 0, 0, 0) → √(9 + 16 + 144) = 13; with a global of ones: Δ = (2, 3, −1, 11) → √135
        Assert.Equal(13.0, UpdateNormRule.NormOfUpdate([3f, 4f, 0f, 12f], [0f, 0f, 0f, 0f]));
        Assert.Equal(Math.Sqrt(135), UpdateNormRule.NormOfUpdate([3f, 4f, 0f, 12f], [1f, 1f, 1f, 1f]), 12);
        // longer than one vector register and one 4096-float block, with a tail: 10,007 ones → √10007
        Assert.Equal(Math.Sqrt(10_007), UpdateNormRule.NormOfUpdate(Enumerable.Repeat(1f, 10_007).ToArray(), new float[10_007]), 9);
    }

    [Fact]
    public void The_median_is_the_middle_norm_or_the_mean_of_the_middle_two()
    {
        Assert.Equal(2.0, UpdateNormRule.Median([3, 1, 2]));
        Assert.Equal(2.5, UpdateNormRule.Median([4, 1, 3, 2]));
        Assert.Equal(5.0, UpdateNormRule.Median([5]));
        Assert.Null(UpdateNormRule.Median([]));
        Assert.Equal(2.0, UpdateNormRule.Median([1, 2, 1000])); // one huge update does not move it
    }

    [Fact]
    public void An_update_more_than_k_times_the_median_is_refused_with_both_numbers_and_the_rest_pass()
    {
        // k = 3, median 2: the bound is 6
        Assert.Equal("update norm 6.5 is more than 3× the round's median (2)", UpdateNormRule.Rejection(6.5, 3, 2));
        Assert.Null(UpdateNormRule.Rejection(6.0, 3, 2)); // at the bound: passes
        Assert.Null(UpdateNormRule.Rejection(0.0, 3, 2));
        Assert.Null(UpdateNormRule.Rejection(1e9, null, 2)); // the rule is off
        Assert.Null(UpdateNormRule.Rejection(1e9, 3, 0));    // nothing moved: no scale to judge by
        Assert.Null(UpdateNormRule.Rejection(1e9, 3, null)); // no updates
        // 10·√199210 against 2.5 × 2·√199210
        Assert.Equal("update norm 4463 is more than 2.5× the round's median (892.7)", UpdateNormRule.Rejection(4463.2947, 2.5, 892.65895));
    }
}
