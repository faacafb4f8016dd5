using System.Buffers.Binary;
using System.IO.Compression;

namespace FedAvg.Core.Data;

/// <summary>One IDX file (LeCun's MNIST format) read whole: unsigned bytes and their dimensions.</summary>
public sealed record IdxFile(string Path, int[] Dimensions, byte[] Data)
{
    const byte UnsignedByteType = 0x08;

    public int Count => Dimensions[0];

    /// <summary>Reads a raw or gzip-compressed IDX file of unsigned bytes with the expected rank.</summary>
    public static IdxFile Read(string path, int expectedRank)
    {
        if (!File.Exists(path)) throw new DataException($"{path}: file not found.");
        byte[] bytes;
        try
        {
            bytes = IsGzip(path) ? Gunzip(path) : File.ReadAllBytes(path);
        }
        catch (InvalidDataException e)
        {
            throw new DataException($"{path}: not a valid gzip stream ({e.Message}).");
        }
        return Parse(path, bytes, expectedRank);
    }

    public static IdxFile Parse(string path, byte[] bytes, int expectedRank)
    {
        if (bytes.Length < 4) throw new DataException($"{path}: truncated before the magic number ({bytes.Length} bytes).");
        if (bytes[0] != 0 || bytes[1] != 0)
            throw new DataException($"{path}: bad magic number 0x{BinaryPrimitives.ReadUInt32BigEndian(bytes):X8} (expected 0x000008{expectedRank:X2}).");
        if (bytes[2] != UnsignedByteType)
            throw new DataException($"{path}: element type 0x{bytes[2]:X2} is not unsigned byte (0x08).");
        int rank = bytes[3];
        if (rank != expectedRank)
            throw new DataException($"{path}: has {rank} dimensions, expected {expectedRank}.");
        int headerLength = 4 + 4 * rank;
        if (bytes.Length < headerLength)
            throw new DataException($"{path}: truncated inside the header ({bytes.Length} of {headerLength} bytes).");

        var dims = new int[rank];
        long elements = 1;
        for (int i = 0; i < rank; i++)
        {
            uint d = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(4 + 4 * i));
            if (d == 0 || d > int.MaxValue) throw new DataException($"{path}: dimension {i} is {d}.");
            dims[i] = (int)d;
            elements *= d;
        }
        long expectedLength = headerLength + elements;
        if (bytes.Length != expectedLength)
            throw new DataException(
                $"{path}: length is {bytes.Length} bytes but the header ({string.Join("x", dims)}) implies {expectedLength}" +
                (bytes.Length < expectedLength ? " (truncated)." : " (trailing bytes)."));
        return new IdxFile(path, dims, bytes[headerLength..]);
    }

    static bool IsGzip(string path)
    {
        using var stream = File.OpenRead(path);
        return stream.ReadByte() == 0x1f && stream.ReadByte() == 0x8b;
    }

    static byte[] Gunzip(string path)
    {
        using var input = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var output = new MemoryStream();
        input.CopyTo(output);
        return output.ToArray();
    }
}
