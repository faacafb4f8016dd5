using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class TrimmedMeanStrategyTests
{
    [Fact]
    public void Beta_0_2_of_5_cuts_one_value_from_each_end_and_the_outlier_with_it()
    {
        // ⌊0.2·5⌋ = 1. {1,2,3,7,1000} → (2+3+7)/3 = 4; {10,20,30,40,−1000} → 20; {−1,−2,−3,−4,1000} → −2
        var result = Round(new TrimmedMeanStrategy(Options(), 0.2), 1, new float[3],
            U("a", 1, 1, 10, -1), U("b", 1, 2, 20, -2), U("c", 1, 3, 30, -3), U("d", 1, 7, 40, -4), U("e", 999, 1000, -1000, 1000));
        Assert.Equal([4f, 20f, -2f], result);
    }

    [Fact]
    public void The_cut_is_the_floor_of_beta_n_and_ties_are_kept_or_cut_as_values()
    {
        // ⌊0.2·4⌋ = 0: the plain (unweighted) mean (1+2+3+100)/4 = 26.5; {5,5,5,9} → 6
        Assert.Equal([26.5f, 6f], Round(new TrimmedMeanStrategy(Options(), 0.2), 1, new float[2],
            U("a", 1, 1, 5), U("b", 7, 2, 5), U("c", 1, 3, 5), U("d", 1, 100, 9)));
        // ⌊0.25·4⌋ = 1: {1,2,3,100} → 2.5; {5,5,5,9} → 5
        Assert.Equal([2.5f, 5f], Round(new TrimmedMeanStrategy(Options(), 0.25), 1, new float[2],
            U("a", 1, 1, 5), U("b", 7, 2, 5), U("c", 1, 3, 5), U("d", 1, 100, 9)));
        Assert.Equal(2, TrimmedMeanStrategy.Cut(0.49, 5));
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.7)]
    [InlineData(-0.1)]
    public void Beta_outside_0_to_half_is_refused(double beta)
    {
        Assert.StartsWith("fedavg.strategy.beta must be in [0, 0.5)", Assert.Throws<UsageException>(() => new TrimmedMeanStrategy(Options(), beta)).Message);
    }
}
