using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Core.Tests.Strategies;

public class RoundConfigTests
{
    [Fact]
    public void A_train_config_goes_through_the_round_config_unchanged_with_the_well_known_keys_in_order()
    {
        var train = new TrainConfig(5, 50, 0.0316, 0.9, 1e-4, 0.01);
        var config = RoundConfig.From(train);
        Assert.Equal(["epochs", "batch", "lr", "momentum", "weight-decay", "proximal-mu"], config.Entries.Select(e => e.Key));
        Assert.Equal([5.0, 50.0, 0.0316, 0.9, 1e-4, 0.01], config.Entries.Select(e => e.Value));
        Assert.Equal(train, config.ToTrainConfig());
        Assert.Equal(new TrainConfig(1, 10, 0.1), RoundConfig.From(new TrainConfig(1, 10, 0.1)).ToTrainConfig());
    }

    [Fact]
    public void Pairs_rebuild_an_equal_config_and_unknown_keys_are_kept_in_order()
    {
        var config = RoundConfig.From(new TrainConfig(2, 32, 0.05)).With("server-round", 7).With("lr", 0.2);
        Assert.Equal(0.2, config["lr"]); // replaced where it stood
        Assert.Equal("server-round", config.Entries[^1].Key); // appended
        var copy = new RoundConfig(config.Entries.ToList()); // what a wire serializer does
        Assert.Equal(config, copy);
        Assert.Equal(7.0, copy["server-round"]);
        Assert.Equal(new TrainConfig(2, 32, 0.2), copy.ToTrainConfig()); // unknown keys ignored by the trainer
        Assert.NotEqual(config, RoundConfig.From(new TrainConfig(2, 32, 0.05)));
    }

    [Fact]
    public void Missing_optional_keys_are_zero_and_missing_or_fractional_required_ones_are_refused()
    {
        Assert.Equal(new TrainConfig(3, 8, 0.5), RoundConfig.Of(("epochs", 3), ("batch", 8), ("lr", 0.5)).ToTrainConfig());
        Assert.Contains("'lr'", Assert.Throws<ArgumentException>(() => RoundConfig.Of(("epochs", 3), ("batch", 8)).ToTrainConfig()).Message);
        Assert.Contains("'epochs'", Assert.Throws<ArgumentException>(() => RoundConfig.Of(("epochs", 2.5), ("batch", 8), ("lr", 1)).ToTrainConfig()).Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => RoundConfig.Of(("lr", 1), ("lr", 2))).Message);
    }
}
