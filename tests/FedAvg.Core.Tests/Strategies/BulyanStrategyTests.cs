using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class BulyanStrategyTests
{
    // n = 7, f = 1: θ = 5 picked by Krum one at a time, β = 3 averaged per coordinate.
    static ClientUpdate[] Seven(float outlier) =>
    [
        U("a", 1, 0, 0), U("b", 1, 2, 0), U("c", 1, 0, 2), U("d", 1, 2, 2), U("e", 1, 1, 1), U("f", 1, 1, 3),
        U("g", 1000, outlier, -outlier),
    ];

    [Fact]
    public void Krum_selects_theta_updates_one_after_another_on_the_shrinking_set()
    {
        // set of 7, 4 nearest: e 2+2+2+2 = 8 is lowest → e. Then of 6, 3 nearest: c 4+4+2 = 10, d 4+4+2 = 10 → c (first).
        // Of 5, 2 nearest: a (b 4, d 8, f 10) 12; b (a 4, d 4, f 10) 8; d (a 8, b 4, f 2) 6; f (a 10, b 10, d 2) 12 → d.
        // Of 4 (a, b, f, g), 1 nearest: a 4, b 4, f 10 → a. Of 3 (b, f, g), 1 nearest: b 10, f 10 → b.
        Assert.Equal([4, 2, 3, 0, 1], BulyanStrategy.Select(Seven(100), f: 1));
    }

    [Fact]
    public void The_beta_values_closest_to_the_median_are_averaged_with_ties_taking_the_smaller_value()
    {
        // selected a, b, c, d, e. x: {0,2,0,2,1} sorted 0,0,1,2,2, median 1: 1, then 0 and 2 tie → 0, then 0 and 2
        // tie → 0: (0+0+1)/3. y: {0,0,2,2,1} the same. The outlier g plays no part, however far or heavy it is.
        Assert.Equal([1f / 3, 1f / 3], Round(new BulyanStrategy(Options(), f: 1), 1, new float[2], Seven(100)));
        Assert.Equal([1f / 3, 1f / 3], Round(new BulyanStrategy(Options(), f: 1), 1, new float[2], Seven(1e6f)));
    }

    [Fact]
    public void Closest_to_median_without_ties_takes_the_tight_cluster()
    {
        // θ = 5, β = 3: {0, 10, 11, 12, 50}, median 11 → 11, then 10 and 12 (distance 1 each: 10 first), mean 11
        // {1, 2, 3, 4, 5} median 3 → 3, 2, 4 → 3; {−9, 0, 1, 2, 3} median 1 → 1, 0, 2 → 1
        float[][] vectors = [[0, 1, -9], [10, 2, 0], [11, 3, 1], [12, 4, 2], [50, 5, 3]];
        Assert.Equal([11f, 3f, 1f], BulyanStrategy.ClosestToMedianMean(vectors, 3));
    }

    [Theory]
    [InlineData(6, 1, false)]
    [InlineData(7, 1, true)]
    [InlineData(10, 2, false)]
    [InlineData(11, 2, true)]
    public void Bulyan_needs_at_least_4f_plus_3_clients_per_round(int n, int f, bool valid)
    {
        var s = new BulyanStrategy(Options(), f);
        if (valid) s.Validate(n);
        else Assert.StartsWith("fedavg.strategy.f: bulyan with f = ", Assert.Throws<UsageException>(() => s.Validate(n)).Message);
    }
}
