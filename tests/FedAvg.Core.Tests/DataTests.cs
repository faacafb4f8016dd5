using FedAvg.Core.Data;
using FedAvg.Tests.Shared;

namespace FedAvg.Core.Tests;

public class DataTests
{
    [Fact]
    public void Mnist_loads_whole_with_matching_counts_and_range()
    {
        var train = TestData.MnistTrain;
        Assert.Equal(60000, train.Count);
        Assert.Equal(new long[] { 60000, 1, 28, 28 }, train.Images.shape);
        Assert.Equal(10000, TestData.MnistTest.Count);
        Assert.Equal(0f, train.Images.min().item<float>());
        Assert.Equal(1f, train.Images.max().item<float>());
        // the label tensor and the managed labels agree
        Assert.Equal(train.LabelValues.Take(100).Select(b => (long)b), train.Labels.narrow(0, 0, 100).data<long>().ToArray());
        Assert.Equal(10, train.LabelValues.Distinct().Count());
    }

    [Fact]
    public void Fashion_mnist_loads_from_gzip_and_standardizes_to_its_documented_mean_and_std()
    {
        var (train, test) = new DatasetStore(TestData.DataDir).Load(DatasetCatalog.FashionMnist, standardize: true);
        using (train)
        using (test)
        {
            Assert.Equal(60000, train.Count);
            Assert.Equal(10000, test.Count);
            Assert.InRange(train.Images.mean().item<float>(), -0.01f, 0.01f);
            Assert.InRange(train.Images.std().item<float>(), 0.99f, 1.01f);
        }
    }

    [Fact]
    public void Raw_and_gzip_files_read_the_same()
    {
        string dir = TestData.TempDir();
        string raw = TestData.MnistFile("t10k-labels-idx1-ubyte");
        string gz = Path.Combine(dir, "labels.gz");
        using (var input = File.OpenRead(raw))
        using (var output = new System.IO.Compression.GZipStream(File.Create(gz), System.IO.Compression.CompressionLevel.Fastest))
            input.CopyTo(output);
        Assert.Equal(IdxFile.Read(raw, 1).Data, IdxFile.Read(gz, 1).Data);
    }

    static string Corrupt(Func<byte[], byte[]> change, string source = "t10k-labels-idx1-ubyte")
    {
        string path = Path.Combine(TestData.TempDir(), source);
        File.WriteAllBytes(path, change(File.ReadAllBytes(TestData.MnistFile(source))));
        return path;
    }

    [Fact]
    public void Bad_magic_is_named()
    {
        string path = Corrupt(b => { b[0] = 0x12; return b; });
        var e = Assert.Throws<DataException>(() => IdxFile.Read(path, 1));
        Assert.Contains(path, e.Message);
        Assert.Contains("magic", e.Message);
    }

    [Fact]
    public void Wrong_rank_is_named()
    {
        var e = Assert.Throws<DataException>(() => IdxFile.Read(TestData.MnistFile("t10k-labels-idx1-ubyte"), 3));
        Assert.Contains("dimensions", e.Message);
    }

    [Fact]
    public void Truncated_file_is_named_with_both_lengths()
    {
        string path = Corrupt(b => b[..^7]);
        var e = Assert.Throws<DataException>(() => IdxFile.Read(path, 1));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("10008", e.Message); // header (8) + 10000 labels
    }

    [Fact]
    public void Trailing_bytes_are_refused()
    {
        string path = Corrupt(b => [.. b, 1, 2, 3]);
        Assert.Contains("trailing", Assert.Throws<DataException>(() => IdxFile.Read(path, 1)).Message);
    }

    [Fact]
    public void Truncated_header_and_zero_dimension_are_refused()
    {
        Assert.Contains("header", Assert.Throws<DataException>(() => IdxFile.Read(Corrupt(b => b[..6]), 1)).Message);
        Assert.Contains("dimension 0", Assert.Throws<DataException>(() =>
            IdxFile.Read(Corrupt(b => { b[4] = b[5] = b[6] = b[7] = 0; return b; }), 1)).Message);
    }

    [Fact]
    public void Corrupt_gzip_is_named()
    {
        string path = Path.Combine(TestData.TempDir(), "broken.gz");
        File.WriteAllBytes(path, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff]);
        Assert.Contains("gzip", Assert.Throws<DataException>(() => IdxFile.Read(path, 1)).Message);
    }

    [Fact]
    public void Image_and_label_counts_must_agree()
    {
        var images = IdxFile.Read(TestData.MnistFile("t10k-images-idx3-ubyte"), 3);
        var labels = IdxFile.Read(TestData.MnistFile("train-labels-idx1-ubyte"), 1);
        var e = Assert.Throws<DataException>(() => LabeledImages.FromIdx(images, labels, DatasetCatalog.Mnist, false));
        Assert.Contains("10000 images", e.Message);
        Assert.Contains("60000 labels", e.Message);
    }

    [Fact]
    public void A_checksum_mismatch_names_the_file_and_both_digests()
    {
        string dir = TestData.TempDir();
        Directory.CreateDirectory(Path.Combine(dir, "mnist"));
        foreach (var file in DatasetCatalog.Mnist.Files)
            File.Copy(TestData.MnistFile(file), Path.Combine(dir, "mnist", file));
        string victim = Path.Combine(dir, "mnist", "t10k-labels-idx1-ubyte");
        var bytes = File.ReadAllBytes(victim);
        bytes[^1] ^= 1; // a label flips: same length, valid IDX, wrong data
        File.WriteAllBytes(victim, bytes);

        var e = Assert.Throws<DataException>(() => new DatasetStore(dir).Verify(DatasetCatalog.Mnist));
        Assert.Contains(victim, e.Message);
        Assert.Contains(DatasetCatalog.ExpectedSha256["mnist/t10k-labels-idx1-ubyte"], e.Message);
        Assert.Contains(DatasetStore.Sha256(victim), e.Message);
    }

    [Fact]
    public void A_missing_data_directory_says_how_to_install()
    {
        var e = Assert.Throws<DataException>(() => new DatasetStore(Path.Combine(TestData.TempDir(), "nowhere")).Verify(DatasetCatalog.Mnist));
        Assert.Contains("fedavg data install", e.Message);
    }

    [Fact]
    public void Unknown_dataset_lists_the_valid_ones()
    {
        var e = Assert.Throws<UsageException>(() => DatasetCatalog.Get("cifar"));
        Assert.Contains("mnist", e.Message);
        Assert.Contains("fashion-mnist", e.Message);
    }
}

public class InstallerTests
{
    [Fact]
    public void Fashion_mnist_installs_from_the_debian_package_verifies_and_is_idempotent()
    {
        string dir = TestData.TempDir();
        var log = new List<string>();
        var installer = new DatasetInstaller(dir, log.Add);
        installer.Install(DatasetCatalog.FashionMnist);
        new DatasetStore(dir).Verify(DatasetCatalog.FashionMnist);
        Assert.Contains(log, l => l.Contains("installed and verified"));
        Assert.Empty(Directory.GetFiles(Path.Combine(dir, "fashion-mnist"), "*.tmp"));

        log.Clear();
        installer.Install(DatasetCatalog.FashionMnist);
        Assert.Contains(log, l => l.Contains("already installed"));
    }

    [Fact]
    public void A_directory_where_a_dataset_file_belongs_is_named_before_the_copy_and_nothing_is_left_behind()
    {
        string dir = TestData.TempDir();
        string blocker = Path.Combine(dir, "fashion-mnist", "train-images-idx3-ubyte.gz");
        Directory.CreateDirectory(blocker);
        var log = new List<string>();
        var e = Assert.Throws<DataException>(() => new DatasetInstaller(dir, log.Add).Install(DatasetCatalog.FashionMnist));
        Assert.Contains(blocker, e.Message);
        Assert.Contains("is a directory", e.Message);
        Assert.DoesNotContain(log, l => l.Contains("copying")); // refused before 26 MB were copied for nothing
        Assert.Equal(["train-images-idx3-ubyte.gz"], Directory.GetFileSystemEntries(Path.Combine(dir, "fashion-mnist")).Select(Path.GetFileName));
    }

    [Fact]
    public void A_data_dir_that_is_a_file_is_a_usage_error_naming_it()
    {
        string file = Path.Combine(TestData.TempDir(), "data");
        File.WriteAllText(file, "x");
        var e = Assert.Throws<UsageException>(() => new DatasetInstaller(file, _ => { }).Install(DatasetCatalog.FashionMnist));
        Assert.Equal($"--data-dir {file} is a file; give a directory.", e.Message);
        Assert.Equal("x", File.ReadAllText(file));
    }

    [Fact]
    public void A_damaged_installed_file_is_replaced_on_the_next_install()
    {
        string dir = TestData.TempDir();
        var installer = new DatasetInstaller(dir, _ => { });
        installer.Install(DatasetCatalog.FashionMnist);
        string victim = Path.Combine(dir, "fashion-mnist", "t10k-labels-idx1-ubyte.gz");
        File.WriteAllBytes(victim, [1, 2, 3]);
        Assert.Throws<DataException>(() => new DatasetStore(dir).Verify(DatasetCatalog.FashionMnist));
        installer.Install(DatasetCatalog.FashionMnist);
        new DatasetStore(dir).Verify(DatasetCatalog.FashionMnist);
    }
}
