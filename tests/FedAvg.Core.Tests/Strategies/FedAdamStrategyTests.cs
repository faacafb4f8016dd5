using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class FedAdamStrategyTests
{
    [Fact]
    public void Two_rounds_without_bias_correction_match_the_hand_computed_adam_steps()
    {
        var s = new FedAdamStrategy(Options(), eta: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-9, biasCorrection: false);
        // round 1: Δ = ±0.5; m = 0.1·Δ = ±0.05; v = 0.01·0.25 = 0.0025, √v = 0.05; w ← w + 0.1·(±0.05 / 0.05) = ±1.1
        var w1 = Round(s, 1, [1f, -1f], U("a", 1, 1.5f, -1.5f), U("b", 3, 1.5f, -1.5f));
        Close([1.1, -1.1], w1);
        // round 2: Δ = 0; m = 0.045; v = 0.99·0.0025 = 0.002475; w ← w + 0.1·0.045 / √0.002475
        var w2 = Round(s, 2, w1, U("a", 1, w1), U("b", 1, w1));
        double step = 0.1 * 0.045 / Math.Sqrt(0.002475);
        Close([1.1 + step, -1.1 - step], w2);
    }

    [Fact]
    public void Flowers_bias_correction_scales_eta_by_sqrt_1_minus_beta2_t_plus_1_over_1_minus_beta1_t_plus_1()
    {
        var s = new FedAdamStrategy(Options()); // Flower's defaults: η = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 1e-9, bias-corrected
        var w1 = Round(s, 1, [1f, -1f], U("a", 1, 1.5f, -1.5f));
        double eta1 = 0.1 * Math.Sqrt(1 - 0.99 * 0.99) / (1 - 0.9 * 0.9); // round 1: t + 1 = 2
        Close([1 + eta1, -1 - eta1], w1); // m/√v = ±1 as above
    }

    [Fact]
    public void The_mean_is_weighted_by_sample_count_and_eta_l_is_the_clients_lr()
    {
        var s = new FedAdamStrategy(Options(), eta: 0.1, etaL: 0.03, biasCorrection: false);
        Assert.Equal(0.03, s.ConfigureRound(1, Ids(2)).Config[RoundConfig.LearningRate]);
        // mean = (1·0 + 3·2)/4 = 1.5 → Δ = 0.5 → w = 1.1, as in the unweighted case with both at 1.5
        Close([1.1], Round(s, 1, [1f], U("a", 1, 0f), U("b", 3, 2f)));
    }

    [Fact]
    public void The_vector_part_and_the_tail_compute_the_same_bits()
    {
        int width = System.Numerics.Vector<float>.Count, n = 2 * width + 3;
        var rng = new Random(9);
        var w = Kit.Random(rng, width);
        var a = Kit.Random(rng, width);
        float[] Tile(float[] x) => Enumerable.Range(0, n).Select(i => x[i % width]).ToArray();
        var s = new FedAdamStrategy(Options());
        var w1 = Round(s, 1, Tile(w), U("a", 2, Tile(a)), U("b", 5, Tile(w)));
        var w2 = Round(s, 2, w1, U("a", 2, Tile(w)), U("b", 5, Tile(a)));
        for (int i = 0; i < n; i++) Assert.Equal(w2[i % width], w2[i]);
    }

    [Theory]
    [InlineData(0.1, 0.9, 0.99, 0.0, "tau")]
    [InlineData(0.1, 1.0, 0.99, 1e-9, "beta1")]
    [InlineData(0.1, 0.9, -0.5, 1e-9, "beta2")]
    [InlineData(0.0, 0.9, 0.99, 1e-9, "eta")]
    public void Impossible_settings_are_refused_naming_the_key(double eta, double beta1, double beta2, double tau, string key)
    {
        var e = Assert.Throws<UsageException>(() => new FedAdamStrategy(Options(), eta, 0.1, beta1, beta2, tau));
        Assert.StartsWith($"fedavg.strategy.{key} ", e.Message);
    }
}
